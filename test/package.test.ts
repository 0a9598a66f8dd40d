// The package as a user gets it: packed, installed into fresh apps next to the oldest and the
// newest Fastify 5, compiled with TypeScript's strictest library checks under both module
// resolutions, and run as ESM and as CommonJS.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')

/** The same app, typed: every public name is used, and a wrong option must not compile. */
const APP_TS = `import Fastify from 'fastify'
import gracefulTermination, { fastifyGracefulTermination, InvalidOptionError, NotRootError, type GracefulTerminationOptions, type ShutdownOutcome } from 'fastify-graceful-termination'
import { cerebriumOptions, InvalidCerebriumConfigError } from 'fastify-graceful-termination/cerebrium'

const options: GracefulTerminationOptions = { gracePeriod: 5000, handleSignals: false, closeWebSockets: 'on-drain' }
const app = Fastify()
await app.register(gracefulTermination, options)
await Fastify().register(fastifyGracefulTermination, options)
// @ts-expect-error gracePeriod is a number of milliseconds
await app.register(gracefulTermination, { gracePeriod: '5s' })
const state: 'starting' | 'serving' | 'draining' | 'closing' | 'closed' = app.graceful.state
const outcome: Promise<ShutdownOutcome> = app.graceful.shutdown('deploy')
const codes: string[] = [new InvalidOptionError('a', 'b', 'c').code, new NotRootError('').code, new InvalidCerebriumConfigError('x').code]
const settings = cerebriumOptions({ env: {} })
export { state, outcome, codes, settings }
`

/** What runs: registers, serves a request, shuts down; prints the state it ended in, and whether the named export is the default one. */
const appJs = (load: string): string => `${load}
const app = Fastify()
app.register(gracefulTermination, { handleSignals: false })
app.get('/', async () => ({ state: app.graceful.state }))
app.ready().then(async () => {
  const response = await app.inject('/')
  const outcome = await app.graceful.shutdown('consumer test')
  console.log(JSON.stringify({ response: response.json(), closed: outcome.closed, state: app.graceful.state, named: fastifyGracefulTermination === gracefulTermination }))
})
`
const ESM = appJs(`import Fastify from 'fastify'
import gracefulTermination, { fastifyGracefulTermination } from 'fastify-graceful-termination'`)
const CJS = appJs(`const Fastify = require('fastify')
const { default: gracefulTermination, fastifyGracefulTermination } = require('fastify-graceful-termination')`)

const tsconfig = (moduleResolution: 'nodenext' | 'bundler', file: string): string => JSON.stringify({
  compilerOptions: {
    module: moduleResolution === 'nodenext' ? 'nodenext' : 'esnext',
    moduleResolution,
    target: 'es2022',
    strict: true,
    skipLibCheck: false,
    noEmit: true,
    types: ['node']
  },
  files: [file]
})

/** Every installed copy of a package, by its package.json. */
async function copiesOf (dir: string, name: string): Promise<string[]> {
  const found: string[] = []
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  for (const entry of entries) {
    if (entry.name !== 'package.json' || !entry.parentPath.endsWith(join('node_modules', name))) continue
    found.push(entry.parentPath)
  }
  return found
}

t.test('the packed package in fresh apps', async t => {
  const packDir = t.testdir({})
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: repoRoot })
  const [packed] = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }>, size: number }>
  const files = packed!.files.map(file => file.path)
  t.comment(`${packed!.filename}: ${files.length} files, ${packed!.size} bytes packed`)
  t.ok(files.includes('LICENSE') && files.includes('README.md') && files.includes('dist/lib/index.js') && files.includes('dist/lib/bin.js'),
    'LICENSE, README, the build and the bin')
  t.same(files.filter(file => file.endsWith('.map') || file.startsWith('lib/') || file.startsWith('test/') || file.startsWith('example-app/')), [],
    'no maps, sources, tests or example app')
  const manifest = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8'))
  t.equal(manifest.dependencies?.fastify, undefined, 'fastify is not a dependency')
  t.equal(manifest.peerDependencies?.fastify, '^5.0.0', 'fastify is a peer dependency')

  for (const fastify of ['5.0.0', 'latest']) {
    t.test(`next to fastify@${fastify}`, async t => {
      const dir = t.testdir({
        'package.json': JSON.stringify({ name: 'consumer', private: true }),
        'app.mts': APP_TS,
        'app.ts': APP_TS,
        'app.mjs': ESM,
        'app.cjs': CJS,
        'tsconfig.nodenext.json': tsconfig('nodenext', 'app.mts'),
        'tsconfig.bundler.json': tsconfig('bundler', 'app.ts')
      })
      await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', join(packDir, packed!.filename), `fastify@${fastify}`, '@types/node@22'], { cwd: dir })
      t.same(await copiesOf(join(dir, 'node_modules'), 'fastify'), [join(dir, 'node_modules', 'fastify')], 'one copy of fastify: the app\'s')

      for (const config of ['tsconfig.nodenext.json', 'tsconfig.bundler.json']) {
        const compiled = await run(process.execPath, [tsc, '-p', config], { cwd: dir }).then(() => 'compiles', (err: { stdout: string }) => err.stdout)
        t.equal(compiled, 'compiles', `${config}, skipLibCheck false`)
      }
      for (const file of ['app.mjs', 'app.cjs']) {
        const { stdout } = await run(process.execPath, [file], { cwd: dir })
        t.same(JSON.parse(stdout), { response: { state: 'serving' }, closed: true, state: 'closed', named: true }, `${file} runs; the named export is the default one`)
      }
      if (fastify === 'latest') {
        // Through npm's link, as npx runs it: the shebang and the executable bit must be right.
        const { stdout } = await run(join(dir, 'node_modules', '.bin', 'fastify-graceful-termination'), ['verify', '--help'], { cwd: dir })
        t.match(stdout, /^Usage: fastify-graceful-termination verify \[options\] -- <command\.\.\.>/, 'the verify bin runs from the installed package')
      }
    })
  }
})
