// The platform, found from the variables it documents, and the settings it shapes: each platform's
// window, a fixed one capping the drain, Kubernetes' routing watch, and every explicit option winning.
import t from 'tap'
import Fastify from 'fastify'
import gracefulTermination from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { detectPlatform, PLATFORM_VARIABLES } from '../lib/platform.js'
import { LEVEL } from './helpers/app-process.js'
import { capturedLogs } from './helpers/log-watcher.js'

t.test('each platform is found by the variable it documents', async t => {
  const cases: Array<[Record<string, string>, string | undefined, number]> = [
    [{}, undefined, 0],
    [{ pm_id: '0' }, 'pm2', 1600],
    [{ pm_id: '3', kill_timeout: '5000' }, 'pm2', 5000],
    [{ K_SERVICE: 'api', K_REVISION: 'api-00001' }, 'cloud-run', 10_000],
    [{ FLY_APP_NAME: 'api', FLY_MACHINE_ID: '1' }, 'fly', 5000],
    [{ ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/x' }, 'ecs', 30_000],
    [{ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, 'kubernetes', 30_000]
  ]
  for (const [env, name, window] of cases) {
    const platform = detectPlatform(env)
    t.equal(platform?.name, name, `${JSON.stringify(env)}: ${name}`)
    if (platform !== undefined) t.equal(platform.window, window, `${name}: a window of ${window} ms`)
  }
})

t.test('a process manager wins over the platform it runs on, and Kubernetes comes last', async t => {
  const kubernetes = { KUBERNETES_SERVICE_HOST: '10.96.0.1' }
  t.equal(detectPlatform({ ...kubernetes, pm_id: '0' })?.name, 'pm2')
  t.equal(detectPlatform({ ...kubernetes, K_SERVICE: 'api' })?.name, 'cloud-run', 'Cloud Run on Kubernetes (Knative) is Cloud Run')
  t.equal(detectPlatform({ ...kubernetes, ECS_CONTAINER_METADATA_URI_V4: 'x' })?.name, 'ecs')
})

t.test("PM2's kill_timeout is read only when it is a plain positive integer", async t => {
  for (const killTimeout of ['', '0', '-5', '1.5', '5s', '99999999999']) {
    t.match(detectPlatform({ pm_id: '0', kill_timeout: killTimeout }), { window: 1600, windowSource: "PM2's default kill_timeout" }, JSON.stringify(killTimeout))
  }
  t.match(detectPlatform({ pm_id: '0', kill_timeout: '8000' }), { window: 8000, windowSource: "PM2's kill_timeout" })
})

t.test('the detection reads only the variables it lists', async t => {
  const every = Object.fromEntries(PLATFORM_VARIABLES.map(name => [name, '1']))
  t.ok(detectPlatform(every) !== undefined)
  t.equal(detectPlatform({ KUBERNETES_PORT: 'tcp://10.96.0.1:443', CLOUD_RUN_JOB: 'x', FLY_REGION: 'ams' }), undefined)
})

const on = (env: Record<string, string>) => detectPlatform(env)
const kubernetes = on({ KUBERNETES_SERVICE_HOST: '10.96.0.1' })

t.test('without a platform: the defaults, and nothing to warn of', async t => {
  const { options, sources, warnings, platform } = resolveOptions({})
  t.equal(platform, undefined)
  t.equal(options.gracePeriod, 30_000)
  t.equal(options.readinessDelay, 0)
  t.same(sources, { gracePeriod: 'default', readinessDelay: 'default', maxConcurrency: 'default', signals: 'default' })
  t.same(warnings, [])
})

t.test('Kubernetes: its default window, and a routing watch derived from it', async t => {
  const { options, sources, warnings } = resolveOptions({}, kubernetes)
  t.equal(options.gracePeriod, 30_000)
  t.same(options.readinessDelay, { quietPeriod: 1000, minimum: 2000, maximum: 15_000 })
  t.equal(sources.gracePeriod, "Kubernetes' default terminationGracePeriodSeconds")
  t.equal(sources.readinessDelay, 'kubernetes: routing stops after the signal')
  t.same(warnings, [])

  t.same(resolveOptions({ gracePeriod: 10_000 }, kubernetes).options.readinessDelay, { quietPeriod: 1000, minimum: 1000, maximum: 5000 },
    'a shorter grace period shortens the watch')
  t.same(resolveOptions({ gracePeriod: 4000 }, kubernetes).options.readinessDelay, { quietPeriod: 400, minimum: 400, maximum: 2000 })
})

t.test('an explicit readinessDelay wins over the routing watch', async t => {
  const { options, sources } = resolveOptions({ readinessDelay: 0 }, kubernetes)
  t.equal(options.readinessDelay, 0)
  t.equal(sources.readinessDelay, 'option')
  t.equal(resolveOptions({ readinessDelay: 5000 }, kubernetes).options.readinessDelay, 5000)
})

t.test('a routing watch can be asked for anywhere, each part given or derived', async t => {
  t.same(resolveOptions({ readinessDelay: {} }).options.readinessDelay, { quietPeriod: 1000, minimum: 2000, maximum: 15_000 })
  t.same(resolveOptions({ readinessDelay: { minimum: 8000 } }, kubernetes).options.readinessDelay, { quietPeriod: 1000, minimum: 8000, maximum: 15_000 },
    'a slower cluster raises the minimum')
  t.same(resolveOptions({ readinessDelay: { maximum: 500 } }).options.readinessDelay, { quietPeriod: 500, minimum: 500, maximum: 500 },
    'derived parts never pass the maximum')
  t.same(resolveOptions({ readinessDelay: { quietPeriod: 0, minimum: 0 } }).options.readinessDelay, { quietPeriod: 0, minimum: 0, maximum: 15_000 })
})

t.test('a bad routing watch names the part, the value and what is allowed', async t => {
  const bad: Array<[unknown, RegExp]> = [
    [{ quiet: 1000 }, /option readinessDelay\.quiet must be one of quietPeriod, minimum, maximum \(unknown setting\), received 1000/],
    [{ quietPeriod: -1 }, /option readinessDelay\.quietPeriod must be an integer from 0 to 15000, received -1/],
    [{ maximum: 30_000 }, /option readinessDelay\.maximum must be an integer from 0 to 29999, received 30000/],
    [{ maximum: 4000, minimum: 5000 }, /option readinessDelay\.minimum must be an integer from 0 to 4000, received 5000/],
    [{ minimum: '2s' }, /option readinessDelay\.minimum must be an integer from 0 to 15000, received "2s"/],
    [[1000], /option readinessDelay must be an integer >= 0 or a routing watch \(\{ quietPeriod, minimum, maximum \}\), received \[1000\]/],
    [null, /option readinessDelay must be an integer >= 0 or a routing watch .*, received null/]
  ]
  for (const [readinessDelay, message] of bad) {
    t.throws(() => resolveOptions({ readinessDelay }), { code: 'FST_GRACEFUL_INVALID_OPTION', message }, JSON.stringify(readinessDelay))
  }
})

t.test('Cloud Run: the drain is planned within its fixed 10 s, whatever the app asks', async t => {
  const cloudRun = on({ K_SERVICE: 'api' })
  t.equal(resolveOptions({}, cloudRun).options.gracePeriod, 10_000)
  t.same(resolveOptions({}, cloudRun).warnings, [])
  const { options, warnings } = resolveOptions({ gracePeriod: 90_000 }, cloudRun)
  t.equal(options.gracePeriod, 10_000)
  t.equal(warnings.length, 1)
  t.match(warnings[0], {
    fields: { gracePeriod: 90_000, source: 'option', platform: 'cloud-run', window: 10_000 },
    message: /^gracePeriod is 90000 ms \(from option\) but Cloud Run's fixed 10 s sends SIGKILL 10000 ms after the stop signal: the drain is planned on 10000 ms; it cannot be lengthened$/
  })
  t.same(resolveOptions({ gracePeriod: 8000 }, cloudRun).warnings, [], 'a shorter one is kept')
  t.equal(resolveOptions({ gracePeriod: 8000 }, cloudRun).options.gracePeriod, 8000)
  t.throws(() => resolveOptions({ gracePeriod: 90_000, readinessDelay: 10_000 }, cloudRun), {
    message: /option readinessDelay must be less than gracePeriod \(10000, from option\), received 10000/
  }, 'a readinessDelay that no longer fits is an error')
})

t.test('PM2: kill_timeout is the window, and a longer gracePeriod is capped with a warning that says how to raise it', async t => {
  t.equal(resolveOptions({}, on({ pm_id: '0' })).options.gracePeriod, 1600)
  t.equal(resolveOptions({}, on({ pm_id: '0', kill_timeout: '20000' })).options.gracePeriod, 20_000)
  const { options, warnings } = resolveOptions({ gracePeriod: 30_000 }, on({ pm_id: '0' }))
  t.equal(options.gracePeriod, 1600)
  t.match(warnings[0]?.message, /gracePeriod is 30000 ms \(from option\) but PM2's default kill_timeout sends SIGKILL 1600 ms after the stop signal: .*raise kill_timeout in the ecosystem file/)
  t.same(resolveOptions({}, on({ pm_id: '0' })).warnings, [], "PM2's short default is no mistake of the app's")
})

t.test('Fly.io and ECS: a gracePeriod past the default window is kept, with a warning naming the setting to raise', async t => {
  const fly = resolveOptions({ gracePeriod: 30_000 }, on({ FLY_APP_NAME: 'api' }))
  t.equal(fly.options.gracePeriod, 30_000)
  t.match(fly.warnings[0]?.message, /gracePeriod is 30000 ms \(from option\) but Fly\.io's default kill_timeout is 5000 ms: unless fly\.toml's kill_timeout is at least 30 s, SIGKILL cuts the drain/)
  t.equal(resolveOptions({}, on({ FLY_APP_NAME: 'api' })).options.gracePeriod, 5000)
  const ecs = resolveOptions({ gracePeriod: 150_000 }, on({ ECS_CONTAINER_METADATA_URI_V4: 'x' }))
  t.match(ecs.warnings[0]?.message, /ECS's default stopTimeout is 30000 ms: unless the container's stopTimeout \(at most 120 s on Fargate\) is at least 150 s/)
})

t.test('a platform that stops with SIGINT warns when the signals leave it out', async t => {
  const { warnings } = resolveOptions({ signals: ['SIGTERM'] }, on({ FLY_APP_NAME: 'api' }))
  t.match(warnings[0], { fields: { stopSignal: 'SIGINT' }, message: /signals do not include SIGINT, the signal fly stops the process with/ })
  t.same(resolveOptions({ signals: ['SIGTERM'], handleSignals: false }, on({ FLY_APP_NAME: 'api' })).warnings, [],
    'an app that handles no signal itself has said so')
})

t.test('only an explicit gracePeriod under 1000 ms looks like seconds', async t => {
  t.match(resolveOptions({ gracePeriod: 30 }).warnings[0]?.message, /did you mean 30000\?/)
  t.same(resolveOptions({}, on({ pm_id: '0', kill_timeout: '500' })).warnings, [], "PM2's own kill_timeout is taken as meant")
})

t.test('sources given with the options (cerebriumOptions) are named as such', async t => {
  const input = { gracePeriod: 90_000, [Symbol.for('fastify-graceful-termination.settingSources')]: { gracePeriod: 'cerebrium.toml cerebrium.scaling.response_grace_period' } }
  const { sources, warnings } = resolveOptions(input, on({ K_SERVICE: 'api' }))
  t.equal(sources.gracePeriod, 'cerebrium.toml cerebrium.scaling.response_grace_period')
  t.match(warnings[0]?.message, /gracePeriod is 90000 ms \(from cerebrium\.toml cerebrium\.scaling\.response_grace_period\) but Cloud Run's fixed 10 s/)
})

/** Sets variables of this process for one test. */
function withEnv (t: { teardown (fn: () => void): void }, env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) {
    const before = process.env[name]
    process.env[name] = value
    t.teardown(() => { if (before === undefined) delete process.env[name]; else process.env[name] = before })
  }
}

t.test('the plugin says once at start which platform it found and where each setting came from', async t => {
  withEnv(t, { K_SERVICE: 'api' })
  const { stream, lines } = capturedLogs()
  const app = Fastify({ logger: { stream } })
  await app.register(gracefulTermination, { gracePeriod: 90_000, maxConcurrency: 4, handleSignals: false })
  await app.ready()
  await app.close()
  const settings = lines.filter(line => /running on/.test(line.msg))
  t.equal(settings.length, 1, 'one line')
  t.match(settings[0], {
    level: LEVEL.info,
    msg: 'running on cloud-run (K_SERVICE is set)',
    platform: 'cloud-run',
    detectedBy: 'K_SERVICE',
    gracePeriod: { value: 10_000, source: 'option' },
    readinessDelay: { value: 0, source: 'default' },
    maxConcurrency: { value: 4, source: 'option' },
    signals: { value: ['SIGTERM', 'SIGINT'], source: 'default' }
  })
  const warning = lines.find(line => line.level === LEVEL.warn)
  t.match(warning, { platform: 'cloud-run', window: 10_000, msg: /the drain is planned on 10000 ms/ })
})

t.test('with no platform the line says so, and an unlimited concurrency reads as such', async t => {
  const { stream, lines } = capturedLogs()
  const app = Fastify({ logger: { stream } })
  await app.register(gracefulTermination, { handleSignals: false })
  await app.close()
  t.match(lines.find(line => line.platform !== undefined), {
    msg: 'no platform detected: the defaults apply',
    platform: null,
    maxConcurrency: { value: 'unlimited', source: 'default' }
  })
})
