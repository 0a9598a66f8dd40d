// The first minutes of a replica: alive but not ready while its model loads, on the real signal
// path (spawned apps, real signals, real TCP), and the gate's rules through inject.
import t from 'tap'
import Fastify from 'fastify'
import { fileURLToPath } from 'node:url'
import gracefulTermination from '../lib/index.js'
import { hasMessage, LEVEL, requestFor, startApp, startCommand } from './helpers/app-process.js'
import { exampleAppEnv } from './helpers/example-app.js'
import { request } from './helpers/http.js'
import { capturedLogs } from './helpers/log-watcher.js'

const exampleApp = fileURLToPath(new URL('../dist/example-app/server.js', import.meta.url))
const predict = (port: number) => request(port, '/predict', {
  method: 'POST',
  body: JSON.stringify({ input: 'abc', ms: 10 }),
  headers: { 'content-type': 'application/json' }
})

t.test('the example app with MODEL_LOAD_MS: alive, not ready and refusing work during the load; then it serves', async t => {
  const app = await startCommand(t, process.execPath, [exampleApp], { env: exampleAppEnv({ MODEL_LOAD_MS: '4000' }) })
  const ready = await request(app.port, '/ready')
  t.equal(ready.status, 503, 'readiness: 503 during the load')
  t.match(ready.json(), { status: 'starting', active_requests: 0, queued: 0 })
  t.equal(ready.headers['retry-after'], '1')
  const health = await request(app.port, '/health')
  t.equal(health.status, 200, 'liveness: 200, so the platform does not restart it')
  const refused = await predict(app.port)
  t.equal(refused.status, 503, 'other work: 503')
  t.equal(refused.headers['retry-after'], '1')
  t.match(refused.json(), { code: 'FST_GRACEFUL_STARTING', statusCode: 503 })

  await app.waitForLog(hasMessage(/startup work done: ready/))
  t.equal((await request(app.port, '/ready')).status, 200, 'then ready')
  const served = await predict(app.port)
  t.equal(served.status, 200, 'and serving')
  t.same(served.json(), { output: 'cba', ms: 10 })
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
})

t.test('SIGTERM during the load: the load\'s signal aborts, and the process exits 0 at once', async t => {
  const app = await startApp(t, { env: { FIXTURE_STARTUP_MS: '10000' } })
  t.equal((await request(app.port, '/ready')).status, 503)
  const signalledAt = performance.now()
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 0, 'nothing was in flight')
  const elapsedMs = exit.at - signalledAt
  t.ok(elapsedMs < 1500, `exited within 1.5 s, not after the load (${elapsedMs.toFixed(0)} ms)`)
  t.match(app.logs.find(hasMessage(/model load stopped/)), { aborted: true }, 'the load saw its signal aborted')
  t.ok(app.logs.some(hasMessage(/startup work ended after the shutdown started/)), 'its rejection is no failure')
  t.notOk(app.logs.some(line => (line.level ?? 0) >= LEVEL.error), 'no error logged')
})

t.test('startup work that fails: its cause is logged, and the process exits 1 through the shutdown', async t => {
  const app = await startApp(t, { env: { FIXTURE_STARTUP_MS: '300', FIXTURE_STARTUP_FAIL: '1' } })
  const exit = await app.exited
  t.equal(exit.code, 1)
  t.match(app.logs.find(hasMessage(/startup work failed/)), { level: LEVEL.error, err: { message: 'weights not found: /models/demo.safetensors' } })
  t.match(app.logs.find(hasMessage(/shutdown started/)), { reason: 'startup work failed' })
  t.match(app.logs.find(hasMessage(/^exiting with code 1/)), { msg: 'exiting with code 1: startup work failed' })
})

t.test('a route with config.graceful.serveWhileStarting is served during the load; probes too; the rest is refused', async t => {
  const app = await startApp(t, { env: { FIXTURE_STARTUP_MS: '3000' } })
  const admin = await request(app.port, '/admin')
  t.equal(admin.status, 200)
  t.same(admin.json(), { state: 'starting' })
  t.equal((await request(app.port, '/slow?ms=1')).status, 503)
  await app.waitForLog(hasMessage(/model loaded/))
  await app.waitForLog(hasMessage(/startup work done/))
  t.equal((await request(app.port, '/slow?ms=1')).status, 200)
  t.same((await request(app.port, '/admin')).json(), { state: 'serving' })
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
})

t.test('a request in flight on an opted-in route when the signal comes during the load is served', async t => {
  const app = await startApp(t, { env: { FIXTURE_STARTUP_MS: '10000' } })
  const admin = request(app.port, '/admin')
  await app.waitForLog(requestFor('/admin'))
  app.kill('SIGTERM')
  t.equal((await admin).status, 200)
  t.equal((await app.exited).code, 0)
})

t.test('the gate, through inject', async t => {
  t.test('no startup work: serving from the start, as without a gate', async t => {
    const app = Fastify()
    await app.register(gracefulTermination, { handleSignals: false })
    app.get('/work', async () => 'done')
    t.teardown(() => app.close())
    t.equal(app.graceful.state, 'serving')
    t.equal((await app.inject('/work')).statusCode, 200)
    t.equal((await app.inject('/ready')).statusCode, 200)
  })

  t.test('state and readiness follow the work; startup() returns it as given', async t => {
    const app = Fastify()
    await app.register(gracefulTermination, { handleSignals: false })
    app.get('/work', async () => 'done')
    t.teardown(() => app.close())
    let finish: (value: string) => void = () => {}
    const work = new Promise<string>(resolve => { finish = resolve })
    t.equal(app.graceful.startup(work), work)
    t.equal(app.graceful.state, 'starting')
    t.equal(app.graceful.ready, false)
    const refused = await app.inject('/work')
    t.equal(refused.statusCode, 503)
    t.match(refused.json(), { code: 'FST_GRACEFUL_STARTING' })
    finish('weights')
    t.equal(await work, 'weights')
    t.equal(app.graceful.state, 'serving')
    t.equal(app.graceful.ready, true)
    t.equal((await app.inject('/work')).statusCode, 200)
  })

  t.test('a function is called with the drain\'s signal; shutdown() aborts it', async t => {
    const app = Fastify()
    await app.register(gracefulTermination, { handleSignals: false })
    let seen: AbortSignal | undefined
    app.graceful.startup(async signal => { seen = signal; await new Promise(resolve => signal.addEventListener('abort', resolve)) })
    t.equal(seen, app.graceful.signal)
    const outcome = await app.graceful.shutdown('test')
    t.equal(seen?.aborted, true)
    t.match(outcome, { drained: true, closed: true })
  })

  t.test('with handleSignals false, failed startup work shuts the instance down and leaves the process to the app', async t => {
    const { stream, lines } = capturedLogs()
    const app = Fastify({ logger: { stream } })
    await app.register(gracefulTermination, { handleSignals: false })
    const failed = app.graceful.startup(Promise.reject(new Error('no GPU found')))
    await t.rejects(failed, { message: 'no GPU found' }, 'startup() returns the work as given')
    while (app.graceful.state !== 'closed') await new Promise(resolve => setImmediate(resolve))
    t.match(lines.find(line => /startup work failed/.test(line.msg)), { level: LEVEL.error, err: { message: 'no GPU found' } })
    t.match(lines.find(line => /shutdown started/.test(line.msg)), { reason: 'startup work failed' })
  })

  t.test('startup() once the app listens and is ready: a coded error', async t => {
    const app = Fastify()
    await app.register(gracefulTermination, { handleSignals: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(() => app.close())
    t.throws(() => app.graceful.startup(Promise.resolve()), { code: 'FST_GRACEFUL_STARTUP_OVER', message: /called after the app was ready.*before listen\(\)/ })
  })

  t.test('a bad config.graceful fails when the route is added, naming the route', async t => {
    const bad: Array<[unknown, RegExp]> = [
      [{ serveWhileStarting: 'yes' }, /option config\.graceful of route GET \/x: serveWhileStarting must be a boolean, received "yes"/],
      [{ limit: 'no' }, /option config\.graceful of route GET \/x: limit must be a boolean, received "no"/],
      [{ limits: false }, /option config\.graceful of route GET \/x: limits must be one of serveWhileStarting, limit \(unknown setting\), received false/],
      [true, /option config\.graceful of route GET \/x must be an object, received true/]
    ]
    for (const [graceful, message] of bad) {
      const app = Fastify()
      await app.register(gracefulTermination, { handleSignals: false })
      t.throws(() => app.get('/x', { config: { graceful } as object }, async () => 'x'), { code: 'FST_GRACEFUL_INVALID_OPTION', message })
      await app.close()
    }
  })
})
