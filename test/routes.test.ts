// Readiness and liveness, through fastify.inject: routes and options, not the signal path.
import t from 'tap'
import Fastify from 'fastify'
import gracefulTermination, { type GracefulTerminationOptions } from '../lib/index.js'

async function appWith (t: { teardown (fn: () => unknown): void }, options: GracefulTerminationOptions = {}) {
  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false, ...options })
  app.get('/work', async () => ({ done: true }))
  t.teardown(() => app.close())
  return app
}

t.test('GET /ready and GET /health while serving', async t => {
  const app = await appWith(t)
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', active_requests: 0, queued: 0 })
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  t.equal((await app.inject({ method: 'HEAD', url: '/ready' })).statusCode, 200, 'HEAD works for probes that use it')
})

t.test('readiness turns 503 the moment the shutdown starts; liveness stays 200', async t => {
  const app = await appWith(t, { gracePeriod: 5000, readinessDelay: 1000, retryAfter: 7 })
  t.equal(app.graceful.ready, true)
  const done = app.graceful.shutdown('test')
  t.equal(app.graceful.state, 'draining')
  t.equal(app.graceful.ready, false)
  t.equal(app.graceful.signal.aborted, true)

  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 503)
  t.same(ready.json(), { status: 'shutting_down', active_requests: 0, queued: 0 })
  t.equal(ready.headers['retry-after'], '7')
  t.equal((await app.inject('/health')).statusCode, 200)
  t.equal((await app.inject('/work')).statusCode, 200, 'served normally during readinessDelay')
  t.match(await done, { reason: 'test', drained: true, closed: true })
})

t.test('custom paths', async t => {
  const app = await appWith(t, { readyPath: '/readyz', healthPath: '/livez' })
  t.equal((await app.inject('/readyz')).statusCode, 200)
  t.equal((await app.inject('/livez')).statusCode, 200)
  t.equal((await app.inject('/ready')).statusCode, 404)
  t.equal((await app.inject('/health')).statusCode, 404)
})

t.test('false registers no route', async t => {
  const app = await appWith(t, { readyPath: false, healthPath: false })
  t.equal((await app.inject('/ready')).statusCode, 404)
  t.equal((await app.inject('/health')).statusCode, 404)
})

t.test('the app can still define its own route on a disabled path', async t => {
  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false, healthPath: false })
  app.get('/health', async () => ({ mine: true }))
  t.teardown(() => app.close())
  t.same((await app.inject('/health')).json(), { mine: true })
})
