// The Dockerfile cannot be built here, so its shape is checked by reading it, and its CMD is
// run as the container runs it: from the repository root after `npm ci && npm run build`.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'smol-toml'
import { hasMessage, requestFor, startCommand } from './helpers/app-process.js'
import { exampleAppEnv } from './helpers/example-app.js'
import { request } from './helpers/http.js'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string): string => readFileSync(resolve(repoRoot, file), 'utf8')

interface Instruction { keyword: string, args: string }

/** The Dockerfile's stages, each a list of instructions; continuation lines joined, comments dropped. */
function dockerfileStages (text: string): Instruction[][] {
  const stages: Instruction[][] = []
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map(line => line.trim())
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    if (keyword.toUpperCase() === 'FROM') stages.push([])
    stages.at(-1)?.push({ keyword: keyword.toUpperCase(), args })
  }
  return stages
}

const stages = dockerfileStages(read('Dockerfile'))
const runStage = stages.at(-1) ?? []
const all = (stage: Instruction[], keyword: string): string[] => stage.filter(i => i.keyword === keyword).map(i => i.args)
const last = (stage: Instruction[], keyword: string): string | undefined => all(stage, keyword).at(-1)
const toml = parse(read('cerebrium.toml')) as { cerebrium: Record<string, Record<string, any>> }

function execFormCmd (): string[] {
  const cmd = last(runStage, 'CMD')
  if (cmd === undefined) throw new Error('the run stage has no CMD')
  try {
    return JSON.parse(cmd)
  } catch {
    throw new Error(`CMD is in shell form (${cmd}): /bin/sh would be PID 1 and SIGTERM would not reach node`)
  }
}

t.test('multi-stage: build with dev dependencies, run with production ones only', async t => {
  t.ok(stages.length >= 2, `${stages.length} stages`)
  const build = stages.slice(0, -1).flat()
  t.ok(all(build, 'RUN').some(run => /\bnpm ci\b/.test(run) && !/--omit=dev/.test(run)), 'the build stage installs dev dependencies')
  t.ok(all(build, 'RUN').some(run => /\bnpm run build\b/.test(run)), 'the build stage compiles')

  t.match(last(runStage, 'FROM'), /^node:\d+(-[a-z]+)?-slim(\s|$)/, 'the run stage is a slim official Node image')
  t.ok(all(runStage, 'RUN').some(run => /\bnpm ci\b.*--omit=dev/.test(run) && /--ignore-scripts/.test(run)),
    'production dependencies only, without `prepare` (it would need tsc)')
  t.notOk(all(runStage, 'RUN').some(run => /npm run build|\btsc\b/.test(run)), 'no compiling in the run stage')
  t.ok(all(runStage, 'COPY').some(copy => /^--from=\S+\s+\S*dist\b/.test(copy)), 'the compiled app comes from the build stage')
  t.ok(all(runStage, 'COPY').some(copy => /\bcerebrium\.toml\b/.test(copy)), 'cerebrium.toml is in the image: the app reads its settings from it')
})

t.test('runs as a non-root user, in a WORKDIR, exposing the toml\'s port', async t => {
  t.match(last(runStage, 'WORKDIR'), /^\/\S+/)
  const user = last(runStage, 'USER')
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `USER ${user}`)
  t.equal(Number(last(runStage, 'EXPOSE')), toml.cerebrium.runtime?.custom?.port, 'EXPOSE = [cerebrium.runtime.custom] port')
})

t.test('CMD runs node directly in exec form, and `npm start` runs the same', async t => {
  const cmd = execFormCmd()
  t.equal(cmd[0], 'node', 'node itself, not npm or a shell, receives SIGTERM as PID 1')
  t.same(all(runStage, 'ENTRYPOINT'), [], 'no ENTRYPOINT to wrap it')
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> }
  t.equal(scripts.start, cmd.join(' '))
})

t.test('cerebrium.toml builds this Dockerfile, and uploads every file it copies', async t => {
  const { deployment, runtime } = toml.cerebrium
  t.equal(resolve(repoRoot, runtime?.custom?.dockerfile_path), resolve(repoRoot, 'Dockerfile'))
  // Cerebrium builds from what `cerebrium deploy` uploads: a file left out of `include` breaks the remote build.
  const include = deployment?.include as string[]
  const sources = [...new Set(stages.flat()
    .filter(i => i.keyword === 'COPY' && !i.args.startsWith('--from'))
    .flatMap(i => i.args.split(/\s+/).slice(0, -1)))]
  // A pattern `dir/**` uploads everything under dir.
  const uploaded = (source: string): boolean => include.some(pattern => pattern === source ||
    (pattern.endsWith('/**') && `${source.replace(/^\.\//, '')}/`.startsWith(pattern.slice(0, -2))))
  t.ok(sources.length > 0)
  for (const source of sources) {
    t.ok(existsSync(resolve(repoRoot, source)), `${source} exists`)
    t.ok(uploaded(source), `${source} is uploaded`)
  }
})

t.test('.dockerignore keeps node_modules and the tests out of the build context', async t => {
  const ignored = read('.dockerignore').split(/\r?\n/).map(line => line.trim())
  t.ok(ignored.includes('node_modules'))
  t.ok(ignored.includes('test'))
})

t.test('the CMD, run from the repository root, serves and drains on SIGTERM', async t => {
  const [command, ...args] = execFormCmd()
  const app = await startCommand(t, command!, args, { cwd: repoRoot, env: exampleAppEnv() })
  t.match(await app.waitForLog(hasMessage(/^settings$/)), { found: true, file: resolve(repoRoot, 'cerebrium.toml') },
    'it reads the cerebrium.toml beside it, as in the image')

  const inFlight = request(app.port, '/predict', {
    method: 'POST',
    body: JSON.stringify({ input: 'SIGTERM', ms: 800 }),
    headers: { 'content-type': 'application/json' }
  })
  await app.waitForLog(requestFor('/predict'))
  app.kill('SIGTERM')
  t.equal((await app.waitForLog(hasMessage(/shutdown started/))).reason, 'SIGTERM')

  const finished = await inFlight
  t.equal(finished.status, 200)
  t.same(finished.json(), { output: 'MRETGIS', ms: 800 })
  const exit = await app.exited
  t.equal(exit.code, 0, 'graceful exit')
  t.equal(exit.signal, null, 'not killed by the signal: node handled it')
  t.ok(app.logs.some(hasMessage(/shutdown complete/)))
})
