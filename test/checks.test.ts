// User checks behind readiness and liveness: each bounded by a timeout, run once at a time and
// once per interval, reported by name; probes answered over real TCP even when every slot is taken.
import t from 'tap'
import Fastify from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import gracefulTermination, { type GracefulTerminationOptions } from '../lib/index.js'
import { CheckRunner } from '../lib/checks.js'
import { request } from './helpers/http.js'

t.test('a check that passes, returns false, throws or rejects', async t => {
  const options = { timeout: 1000, interval: 0 }
  t.match(await new CheckRunner(() => 'fine', options).result(), { ok: true, ms: Number })
  t.match(await new CheckRunner(() => false, options).result(), { ok: false, error: 'returned false' })
  t.match(await new CheckRunner(() => { throw new Error('connection refused') }, options).result(), { ok: false, error: 'connection refused' })
  t.match(await new CheckRunner(async () => { throw new Error('no GPU') }, options).result(), { ok: false, error: 'no GPU' })
})

t.test('a check that hangs fails at its timeout, its signal aborted, and is not run again until it settles', async t => {
  let runs = 0
  let signal: AbortSignal | undefined
  let release: () => void = () => {}
  const runner = new CheckRunner(given => {
    runs++
    signal = given
    // The first run hangs until released; later ones answer at once.
    return runs === 1 ? new Promise<void>(resolve => { release = resolve }) : true
  }, { timeout: 100, interval: 0 })
  const startedAt = performance.now()
  t.match(await runner.result(), { ok: false, ms: 100, error: 'timed out after 100 ms' })
  t.ok(performance.now() - startedAt >= 99, 'at its timeout')
  t.equal(signal?.aborted, true, 'its signal is aborted')
  t.match(await runner.result(), { ok: false, error: 'timed out after 100 ms' }, 'the next probe gets the same failure')
  t.equal(runs, 1, 'while it hangs, it is not run a second time')
  release()
  await sleep(1)
  t.match(await runner.result(), { ok: true })
  t.equal(runs, 2, 'run again once it settled')
})

t.test('a slow check called by 50 probes at once runs once; its result is reused for the interval', async t => {
  let runs = 0
  const runner = new CheckRunner(async () => { runs++; await sleep(50) }, { timeout: 1000, interval: 300 })
  const results = await Promise.all(Array.from({ length: 50 }, () => runner.result()))
  t.equal(runs, 1)
  t.ok(results.every(result => result.ok))
  await runner.result()
  t.equal(runs, 1, 'fresh: reused')
  await sleep(300)
  await runner.result()
  t.equal(runs, 2, 'stale: run again')
})

async function listeningApp (t: { teardown (fn: () => unknown): void }, options: GracefulTerminationOptions) {
  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false, ...options })
  app.get('/work', async (req) => {
    await sleep(Number((req.query as { ms?: string }).ms ?? 0))
    return { done: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: (app.server.address() as { port: number }).port }
}

t.test('a readiness check that fails, then recovers: /ready follows it, and nothing else changes', async t => {
  let databaseUp = true
  const { app, port } = await listeningApp(t, {
    readinessChecks: { database: () => { if (!databaseUp) throw new Error('ECONNREFUSED 10.0.0.5:5432') } },
    checkInterval: 0
  })
  const up = await request(port, '/ready')
  t.equal(up.status, 200)
  t.match(up.json(), { status: 'ready', active_requests: 0, queued: 0, checks: { database: { ok: true, ms: Number } } })

  databaseUp = false
  const down = await request(port, '/ready')
  t.equal(down.status, 503)
  t.equal(down.headers['retry-after'], '1')
  t.match(down.json(), { status: 'not_ready', checks: { database: { ok: false, error: 'ECONNREFUSED 10.0.0.5:5432' } } })
  t.equal(app.graceful.ready, false, 'graceful.ready follows the last result')
  t.equal(app.graceful.state, 'serving', 'no shutdown starts')
  t.equal((await request(port, '/work')).status, 200, 'requests are still served')
  t.equal((await request(port, '/health')).status, 200, 'liveness is not readiness')

  databaseUp = true
  t.equal((await request(port, '/ready')).status, 200, 'recovered')
  t.equal(app.graceful.ready, true)
})

t.test('a liveness check that fails makes /health 503 with its name and cause', async t => {
  const { port } = await listeningApp(t, { livenessChecks: { gpu: () => false, queue: () => true } })
  const health = await request(port, '/health')
  t.equal(health.status, 503)
  t.match(health.json(), { status: 'unhealthy', checks: { gpu: { ok: false, error: 'returned false' }, queue: { ok: true } } })
})

t.test('once the drain starts it owns /ready, whatever the checks say', async t => {
  const { app, port } = await listeningApp(t, { readinessChecks: { database: () => true }, readinessDelay: 2000, gracePeriod: 5000 })
  const done = app.graceful.shutdown('test')
  const draining = await request(port, '/ready')
  t.equal(draining.status, 503)
  t.match(draining.json(), { status: 'shutting_down' })
  await done
})

t.test('a check is run by the probes only: the app\'s requests never run it', async t => {
  let runs = 0
  const { port } = await listeningApp(t, { readinessChecks: { counted: () => { runs++ } }, checkInterval: 0 })
  await Promise.all(Array.from({ length: 10 }, () => request(port, '/work')))
  t.equal(runs, 0)
  await request(port, '/ready')
  t.equal(runs, 1)
})

t.test('probes are answered while every slot is busy and the queue is full, and never queue', async t => {
  const { app, port } = await listeningApp(t, {
    maxConcurrency: 1,
    maxQueue: 1,
    readinessChecks: { database: async () => { await sleep(20) } },
    livenessChecks: { loop: () => true }
  })
  const running = request(port, '/work?ms=1500')
  const queued = request(port, '/work?ms=1')
  while (app.graceful.queued < 1) await new Promise(resolve => setImmediate(resolve))
  const full = await request(port, '/work?ms=1')
  t.equal(full.status, 503, 'the queue is full')
  t.match(full.json(), { code: 'FST_GRACEFUL_QUEUE_FULL' })
  const startedAt = performance.now()
  const [ready, health] = await Promise.all([request(port, '/ready'), request(port, '/health')])
  const probeMs = performance.now() - startedAt
  t.equal(ready.status, 200)
  t.match(ready.json(), { status: 'ready', active_requests: 2, queued: 1 })
  t.equal(health.status, 200)
  t.ok(probeMs < 1000, `answered at once, not after the slot (${probeMs.toFixed(0)} ms)`)
  t.equal((await running).status, 200)
  t.equal((await queued).status, 200)
})

t.test('bad check options name the option and the value', async t => {
  const bad: Array<[GracefulTerminationOptions, RegExp]> = [
    [{ readinessChecks: { database: 'select 1' } as never }, /option readinessChecks must be an object of named check functions, received \{"database":"select 1"\}/],
    [{ livenessChecks: [() => true] as never }, /option livenessChecks must be an object of named check functions/],
    [{ checkTimeout: 0 }, /option checkTimeout must be an integer from 1 to 2147483647, received 0/],
    [{ checkInterval: -1 }, /option checkInterval must be an integer from 0 to 2147483647, received -1/]
  ]
  for (const [options, message] of bad) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(gracefulTermination, { handleSignals: false, ...options }).ready() }, { code: 'FST_GRACEFUL_INVALID_OPTION', message })
  }
})
