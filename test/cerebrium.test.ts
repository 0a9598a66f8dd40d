// Reading cerebrium.toml into plugin options: the mapping, the errors, the overrides, the warnings.
import t from 'tap'
import Fastify from 'fastify'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { parse } from 'smol-toml'
import gracefulTermination from '../lib/index.js'
import { cerebriumOptions } from '../lib/cerebrium.js'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))

const FULL = `
[cerebrium.deployment]
name = "demo"

[cerebrium.runtime.custom]
port = 8192
healthcheck_endpoint = "/livez"
readycheck_endpoint = "/readyz"
dockerfile_path = "./Dockerfile"

[cerebrium.scaling]
replica_concurrency = 4
response_grace_period = 45
`

function tomlFile (t: { testdir (fixture: Record<string, string>): string }, text: string): string {
  return join(t.testdir({ 'cerebrium.toml': text }), 'cerebrium.toml')
}

function errorOf (fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected an error, none was thrown')
}

/** The options' values, without the symbol that says where each came from (tested on its own). */
const values = (options: object): object => Object.fromEntries(Object.entries(options))

function recordingLog (): { warn (obj: object, msg: string): void, warnings: Array<{ obj: Record<string, unknown>, msg: string }> } {
  const warnings: Array<{ obj: Record<string, unknown>, msg: string }> = []
  return { warnings, warn: (obj, msg) => { warnings.push({ obj: obj as Record<string, unknown>, msg }) } }
}

t.test('a missing file gives the defaults', async t => {
  const file = join(t.testdir({}), 'cerebrium.toml')
  const settings = cerebriumOptions({ file, env: {} })
  t.same({ ...settings, options: values(settings.options) }, { options: { readinessDelay: 0 }, port: undefined, file, found: false })
})

t.test('the default path is cerebrium.toml in the working directory', async t => {
  const dir = t.testdir({ 'cerebrium.toml': FULL })
  const cwd = process.cwd()
  process.chdir(dir)
  t.teardown(() => process.chdir(cwd))
  const settings = cerebriumOptions({ env: {} })
  t.equal(settings.file, join(dir, 'cerebrium.toml'))
  t.equal(settings.found, true)
})

t.test('maps each key: seconds to milliseconds, concurrency, endpoints, port', async t => {
  const settings = cerebriumOptions({ file: tomlFile(t, FULL), env: {} })
  t.same(values(settings.options), { readinessDelay: 0, gracePeriod: 45_000, maxConcurrency: 4, readyPath: '/readyz', healthPath: '/livez' })
  t.equal(settings.port, 8192)
  t.equal(settings.found, true)
})

t.test('a file without those keys: Cerebrium\'s defaults where it documents one, a warning for each', async t => {
  const log = recordingLog()
  const settings = cerebriumOptions({ file: tomlFile(t, '[cerebrium.deployment]\nname = "demo"\n'), env: {}, log })
  t.same(values(settings.options), { readinessDelay: 0, maxConcurrency: 10 }, 'replica_concurrency defaults to 10; no gracePeriod is guessed')
  t.equal(settings.port, undefined)
  t.equal(settings.found, true)
  t.equal(log.warnings.length, 2)
  t.match(log.warnings[0], {
    obj: { tomlKey: 'cerebrium.scaling.response_grace_period' },
    msg: /has no cerebrium\.scaling\.response_grace_period: .*graceful-termination page says the instance is terminated right after SIGTERM .*TOML reference gives a default of 3600 s/
  })
  t.match(log.warnings[1], {
    obj: { tomlKey: 'cerebrium.scaling.replica_concurrency' },
    msg: /has no cerebrium\.scaling\.replica_concurrency: .*default of 10, so maxConcurrency is 10/
  })
})

t.test('an app option against a toml default names the default, not a value the file lacks', async t => {
  const log = recordingLog()
  cerebriumOptions({ file: tomlFile(t, '[cerebrium.scaling]\nresponse_grace_period = 60\n'), env: {}, options: { maxConcurrency: 3 }, log })
  t.equal(log.warnings.length, 2)
  t.match(log.warnings[1]!.msg, /maxConcurrency is 3 \(from the app's options\) but .* has no cerebrium\.scaling\.replica_concurrency, whose default is 10: /)
})

t.test('the options say where each came from, for the plugin\'s start-up line', async t => {
  const settings = cerebriumOptions({ file: tomlFile(t, FULL), env: { GRACE_PERIOD_MS: '20000' }, options: { readyPath: '/readyz' } })
  const sources = (settings.options as Record<symbol, unknown>)[Symbol.for('fastify-graceful-termination.settingSources')]
  t.match(sources, {
    gracePeriod: 'environment GRACE_PERIOD_MS',
    maxConcurrency: /cerebrium\.toml cerebrium\.scaling\.replica_concurrency$/,
    readinessDelay: 'Cerebrium: routing stops before SIGTERM',
    readyPath: 'option'
  })
})

t.test('an empty endpoint (Cerebrium then probes over TCP) keeps the plugin\'s route', async t => {
  const settings = cerebriumOptions({
    file: tomlFile(t, '[cerebrium.runtime.custom]\nport = 8000\nhealthcheck_endpoint = ""\nreadycheck_endpoint = ""\n'),
    env: {}
  })
  t.same(values(settings.options), { readinessDelay: 0, maxConcurrency: 10 })
})

t.test('malformed TOML: an error naming the file and where', async t => {
  const file = tomlFile(t, '[cerebrium.scaling]\nreplica_concurrency = 4\nresponse_grace_period = \n')
  t.throws(() => cerebriumOptions({ file, env: {} }), {
    name: 'FastifyError',
    code: 'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG',
    message: `${file} is not valid TOML (line 3`
  })
})

const wrongValues: Array<[string, string, string]> = [
  ['[cerebrium.scaling]\nresponse_grace_period = "900"', 'cerebrium.scaling.response_grace_period', '"900"'],
  ['[cerebrium.scaling]\nresponse_grace_period = 900.0', 'cerebrium.scaling.response_grace_period', '900.0'],
  ['[cerebrium.scaling]\nresponse_grace_period = 0', 'cerebrium.scaling.response_grace_period', '0'],
  ['[cerebrium.scaling]\nresponse_grace_period = 3000000', 'cerebrium.scaling.response_grace_period', '3000000'],
  ['[cerebrium.scaling]\nreplica_concurrency = -1', 'cerebrium.scaling.replica_concurrency', '-1'],
  ['[cerebrium.scaling]\nreplica_concurrency = [1]', 'cerebrium.scaling.replica_concurrency', '[1]'],
  ['[cerebrium.runtime.custom]\nport = 70000', 'cerebrium.runtime.custom.port', '70000'],
  ['[cerebrium.runtime.custom]\nport = "8000"', 'cerebrium.runtime.custom.port', '"8000"'],
  ['[cerebrium.runtime.custom]\nreadycheck_endpoint = "ready"', 'cerebrium.runtime.custom.readycheck_endpoint', '"ready"'],
  ['[cerebrium.runtime.custom]\nhealthcheck_endpoint = 5', 'cerebrium.runtime.custom.healthcheck_endpoint', '5'],
  ['[cerebrium]\nscaling = 5', 'cerebrium.scaling', '5'],
  ['[cerebrium.runtime]\ncustom = "docker"', 'cerebrium.runtime.custom', '"docker"']
]
for (const [text, key, shown] of wrongValues) {
  t.test(`wrong type or range: ${key} = ${shown} names the file, the key and the value`, async t => {
    const file = tomlFile(t, text)
    const err = errorOf(() => cerebriumOptions({ file, env: {} }))
    t.match(err, { code: 'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG', message: `fastify-graceful-termination: ${file}: ${key} must be` })
    t.ok(err.message.endsWith(`received ${shown}`), err.message)
  })
}

t.test('a path that cannot be read as a file is an error, not the defaults', async t => {
  const dir = t.testdir({ 'cerebrium.toml': {} })
  t.throws(() => cerebriumOptions({ file: join(dir, 'cerebrium.toml'), env: {} }), {
    code: 'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG',
    message: /cerebrium\.toml cannot be read: EISDIR/
  })
})

t.test('environment variables override the toml', async t => {
  const settings = cerebriumOptions({
    file: tomlFile(t, FULL),
    env: { GRACE_PERIOD_MS: '20000', READINESS_DELAY_MS: '5000', MAX_CONCURRENCY: '2', PORT: '0' },
    log: recordingLog()
  })
  t.same(values(settings.options), { gracePeriod: 20_000, readinessDelay: 5000, maxConcurrency: 2, readyPath: '/readyz', healthPath: '/livez' })
  t.equal(settings.port, 0, 'PORT=0 (any free port) is allowed')
})

t.test('an empty environment variable overrides nothing', async t => {
  const settings = cerebriumOptions({ file: tomlFile(t, FULL), env: { GRACE_PERIOD_MS: '', MAX_CONCURRENCY: '', PORT: '' } })
  t.equal(settings.options.gracePeriod, 45_000)
  t.equal(settings.options.maxConcurrency, 4)
  t.equal(settings.port, 8192)
})

const wrongEnv: Array<[string, string]> = [
  ['GRACE_PERIOD_MS', '30s'],
  ['GRACE_PERIOD_MS', '1e3'],
  ['GRACE_PERIOD_MS', '0'],
  ['GRACE_PERIOD_MS', ' 3000'],
  ['READINESS_DELAY_MS', '-1'],
  ['MAX_CONCURRENCY', '0'],
  ['MAX_CONCURRENCY', '2.5'],
  ['PORT', '70000'],
  ['PORT', 'http']
]
for (const [name, value] of wrongEnv) {
  t.test(`${name}=${JSON.stringify(value)} is refused like a bad option`, async t => {
    const err = errorOf(() => cerebriumOptions({ file: tomlFile(t, FULL), env: { [name]: value } }))
    t.match(err, { name: 'FastifyError', code: 'FST_GRACEFUL_INVALID_OPTION', message: `option ${name} (environment variable) must be an integer from` })
    t.ok(err.message.endsWith(`received ${JSON.stringify(value)}`), err.message)
  })
}

t.test('an app option that contradicts the toml wins, with a warning naming both values', async t => {
  const file = tomlFile(t, FULL)
  const log = recordingLog()
  const settings = cerebriumOptions({ file, env: {}, options: { maxConcurrency: 8, gracePeriod: 30_000 }, log })
  t.equal(settings.options.maxConcurrency, 8)
  t.equal(settings.options.gracePeriod, 30_000)
  t.equal(log.warnings.length, 2)

  const [grace, concurrency] = log.warnings
  t.match(grace!.obj, { option: 'gracePeriod', value: 30_000, source: "the app's options", tomlKey: 'cerebrium.scaling.response_grace_period', tomlValue: 45, file })
  t.match(grace!.msg, `gracePeriod is 30000 (from the app's options) but ${file} has cerebrium.scaling.response_grace_period = 45 (45000)`)
  t.match(grace!.msg, /SIGKILL/)
  t.match(concurrency!.obj, { option: 'maxConcurrency', value: 8, tomlKey: 'cerebrium.scaling.replica_concurrency', tomlValue: 4 })
  t.match(concurrency!.msg, `maxConcurrency is 8 (from the app's options) but ${file} has cerebrium.scaling.replica_concurrency = 4:`)
})

t.test('an endpoint the app moved is a contradiction too: Cerebrium would probe a route that is not there', async t => {
  const log = recordingLog()
  cerebriumOptions({ file: tomlFile(t, FULL), env: {}, options: { readyPath: '/ready' }, log })
  t.equal(log.warnings.length, 1)
  t.match(log.warnings[0]!.msg, /readyPath is "\/ready" .*\.readycheck_endpoint = "\/readyz": Cerebrium probes that path/)
})

t.test('an environment override that differs from the toml names the variable', async t => {
  const log = recordingLog()
  cerebriumOptions({ file: tomlFile(t, FULL), env: { MAX_CONCURRENCY: '6' }, options: { maxConcurrency: 5 }, log })
  t.equal(log.warnings.length, 1)
  t.match(log.warnings[0]!.obj, { option: 'maxConcurrency', value: 6, source: 'MAX_CONCURRENCY', tomlValue: 4 })
})

t.test('options that agree with the toml log nothing', async t => {
  const log = recordingLog()
  cerebriumOptions({ file: tomlFile(t, FULL), env: { MAX_CONCURRENCY: '4' }, options: { gracePeriod: 45_000, readinessDelay: 1000 }, log })
  t.same(log.warnings, [])
})

t.test('without a logger, a contradiction is a process warning', async t => {
  const warning = once(process, 'warning')
  cerebriumOptions({ file: tomlFile(t, FULL), env: {}, options: { maxConcurrency: 1 } })
  const [emitted] = await warning as [Error & { code: string }]
  t.equal(emitted.code, 'FST_GRACEFUL_CEREBRIUM_MISMATCH')
  t.match(emitted.message, /maxConcurrency is 1 .*\.replica_concurrency = 4/)
})

t.test('the repository\'s cerebrium.toml is a valid custom runtime, and the plugin accepts what it gives', async t => {
  const file = resolve(repoRoot, 'cerebrium.toml')
  const { cerebrium } = parse(readFileSync(file, 'utf8')) as { cerebrium: Record<string, Record<string, any>> }
  t.type(cerebrium.deployment?.name, 'string')
  t.match(cerebrium.hardware, { compute: 'CPU', cpu: Number, memory: Number })
  const custom = cerebrium.runtime?.custom
  t.match(custom, { port: Number, healthcheck_endpoint: '/health', readycheck_endpoint: '/ready', dockerfile_path: String })
  t.ok(existsSync(resolve(repoRoot, custom.dockerfile_path)), 'dockerfile_path points at a file')
  t.match(cerebrium.scaling, { response_grace_period: Number, replica_concurrency: Number })

  const log = recordingLog()
  const settings = cerebriumOptions({ file, env: {}, log })
  t.same(log.warnings, [])
  t.same(values(settings.options), {
    readinessDelay: 0,
    gracePeriod: cerebrium.scaling!.response_grace_period * 1000,
    maxConcurrency: cerebrium.scaling!.replica_concurrency,
    readyPath: '/ready',
    healthPath: '/health'
  })
  t.equal(settings.port, custom.port)

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(gracefulTermination, { ...settings.options, handleSignals: false })
  t.equal((await app.inject('/ready')).statusCode, 200)
  t.equal((await app.inject('/health')).statusCode, 200)
})
