// The packages as a user gets them: the plugin packed, installed into fresh apps next to the
// oldest and the newest Fastify 5, compiled with TypeScript's strictest library checks under both
// module resolutions, and run as ESM and as CommonJS; the verify command packed, installed alone
// into an empty folder, and run against the example app and bare Fastify.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { exampleAppEnv } from './helpers/example-app.js'

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
  t.ok(files.includes('LICENSE') && files.includes('README.md') && files.includes('dist/lib/index.js'), 'LICENSE, README and the build')
  t.same(files.filter(file => file.endsWith('.map') || /^(lib|test|example-app|verify)\//.test(file)), [],
    'no maps, sources, tests, example app or verify command')
  t.same(files.filter(file => /verify|bin/.test(file)), [], 'no file of the verify command: it is a package of its own')
  const manifest = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8'))
  t.equal(manifest.bin, undefined, 'the plugin has no bin')
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
    })
  }
})

/** The verify command's API as a program uses it; a wrong option type must not compile. */
const VERIFY_TS = `import { formatReport, judge, parseArguments, resolveSettings, verify, UsageError, type Report, type Run } from 'graceful-shutdown-check'

const options = resolveSettings(parseArguments(['--route', 'POST /predict', '--', 'node', 'server.js'])!, { cwd: process.cwd() })
const run: Promise<Run> = verify(options, { signal: AbortSignal.timeout(1000), onProgress: ({ phase, sent }) => { console.log(phase, sent) } })
// @ts-expect-error the signal is an AbortSignal
verify(options, { signal: 1000 })
const report: Report = judge(options, await run)
const text: string = formatReport(report)
const code: string = new UsageError('x').code
export { text, code }
`

/** What `npm install` put in node_modules: every package of its lockfile, by path. */
async function installedPackages (dir: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
  return Object.keys(lock.packages).filter(path => path !== '')
}

t.test('the packed verify command, alone in an empty folder, against the example app and bare Fastify', async t => {
  // One folder per test: the tarball in one part of it, the empty app in another.
  const root = t.testdir({ pack: {}, app: { 'package.json': JSON.stringify({ name: 'any-service', private: true }) } })
  const packDir = join(root, 'pack')
  const verifyDir = join(repoRoot, 'verify')
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: verifyDir })
  const [packed] = JSON.parse(stdout) as Array<{ name: string, filename: string, files: Array<{ path: string }>, size: number }>
  const files = packed!.files.map(file => file.path)
  t.comment(`${packed!.filename}: ${files.length} files, ${packed!.size} bytes packed`)
  t.ok(files.includes('LICENSE') && files.includes('README.md') && files.includes('dist/bin.js') && files.includes('dist/index.d.ts'),
    'LICENSE, README, the bin and the types')
  t.same(files.filter(file => file.endsWith('.map') || /^(src|test)\//.test(file)), [], 'no maps, sources or tests')

  const dir = join(root, 'app')
  await run('npm', ['install', '--no-audit', '--no-fund', join(packDir, packed!.filename)], { cwd: dir })
  const installed = await installedPackages(dir)
  t.comment(`installed: ${installed.join(', ')}`)
  t.ok(installed.length <= 6, `${installed.length} packages installed, at most 6`)
  t.same(installed.filter(path => /fastify/.test(path)), [], 'no Fastify, no plugin')

  // Its API, typed: the steps the bin takes, compiled as a consumer compiles them.
  await run('npm', ['install', '--no-audit', '--no-fund', '@types/node@20'], { cwd: dir })
  await writeFile(join(dir, 'check.mts'), VERIFY_TS)
  await writeFile(join(dir, 'tsconfig.json'), tsconfig('nodenext', 'check.mts'))
  const compiled = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir }).then(() => 'compiles', (err: { stdout: string }) => err.stdout)
  t.equal(compiled, 'compiles', 'its types compile, skipLibCheck false')

  // Through npm's link, as npx runs it: the shebang and the executable bit must be right.
  const bin = join(dir, 'node_modules', '.bin', 'graceful-shutdown-check')
  const help = await run(bin, ['verify', '--help'], { cwd: dir })
  t.match(help.stdout, /^Usage: graceful-shutdown-check verify \[options\] -- <command\.\.\.>/)

  const verify = (args: string[]) => run(bin, ['verify', '--json', '--route', 'POST /predict', '--warmup', '1000', ...args], { cwd: repoRoot, env: exampleAppEnv() })
    .then(({ stdout }) => ({ code: 0, report: JSON.parse(stdout) }), (err: { code: number, stdout: string }) => ({ code: err.code, report: JSON.parse(err.stdout) }))
  const [example, bare] = await Promise.all([
    verify(['--body', '{"input":"packed","ms":500}', '--', process.execPath, 'dist/example-app/server.js']),
    verify(['--body', '{"input":"packed","ms":1000}', '--', process.execPath, '--import', 'tsx', 'test/fixtures/bare-fastify.ts'])
  ])
  t.equal(example.code, 0, `the example app passes: ${JSON.stringify(example.report.failures)}`)
  t.match(example.report.requests, { lost: 0, inFlightAtSignal: Number })
  t.ok(example.report.requests.ok > 0)
  t.equal(bare.code, 1, 'bare Fastify fails')
  t.ok(bare.report.requests.reset > 0 && bare.report.requests.lost === bare.report.requests.reset + bare.report.requests.timeout,
    `${bare.report.requests.reset} requests cut after being sent`)
  t.match(bare.report.exit, { signal: 'SIGTERM' })
})
