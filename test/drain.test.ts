// The signal path, for real: a fixture app in its own process, real signals, real TCP.
import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import { hasMessage, LEVEL, requestFor, startApp } from './helpers/app-process.js'
import { failure, openConnections, request } from './helpers/http.js'

t.test('SIGTERM: readiness 503, listener closed, open connections served and closed, in-flight finishes, exit 0', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 } })
  const ready = await request(app.port, '/ready')
  t.equal(ready.status, 200)
  t.same(ready.json(), { status: 'ready', active_requests: 0, queued: 0 })
  const open = await openConnections(t, app.port, 3)

  const inFlight = request(app.port, '/slow?ms=1500')
  await app.waitForLog(requestFor('/slow?ms=1500'))
  app.kill('SIGTERM')
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.equal(started.reason, 'SIGTERM')
  t.equal(started.activeRequests, 1, 'the log counts the request in flight')
  await app.waitForLog(hasMessage(/stopped accepting connections/))

  t.equal(await failure(request(app.port, '/slow?ms=1')), 'ECONNREFUSED', 'a new connection is refused: nothing was sent, any proxy retries it')

  const draining = await request(app.port, '/ready', { agent: open })
  t.equal(draining.status, 503, 'readiness answers 503 while draining')
  t.same(draining.json(), { status: 'shutting_down', active_requests: 1, queued: 0 })
  t.equal(draining.headers['retry-after'], '1')
  t.equal(draining.headers.connection, 'close')

  const health = await request(app.port, '/health', { agent: open })
  t.equal(health.status, 200, 'liveness stays 200 while draining')
  t.same(health.json(), { status: 'ok' })

  const served = await request(app.port, '/slow?ms=1', { agent: open })
  t.equal(served.status, 200, 'a request on a connection already open is served')
  t.equal(served.headers.connection, 'close', 'and its response closes that connection')

  const finished = await inFlight
  t.equal(finished.status, 200, 'the in-flight request is not cut')
  t.same(finished.json(), { slept: 1500 })
  t.equal(finished.headers.connection, 'close', 'a response sent while draining closes its connection')

  const exit = await app.exited
  t.equal(exit.code, 0, 'exit 0 after a clean drain')
  const lastResponseToExitMs = exit.at - finished.endedAt
  t.comment(`last response to exit: ${lastResponseToExitMs.toFixed(1)} ms`)
  t.ok(lastResponseToExitMs < 5000, 'exits promptly after the last response, not at a deadline')

  const phases = app.logs.filter(line => line.plugin === 'fastify-graceful-termination').map(line => line.msg)
  t.match(phases, [/no platform detected/, /shutdown started/, /stopped accepting connections/, /drained/, /shutdown complete/])
  const drained = app.logs.find(hasMessage(/^drained/))!
  t.equal(drained.level, LEVEL.info)
  t.type(drained.elapsedMs, 'number')
})

t.test('SIGINT starts the same sequence', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 } })
  const inFlight = request(app.port, '/slow?ms=500')
  await app.waitForLog(requestFor('/slow?ms=500'))
  app.kill('SIGINT')
  t.equal((await inFlight).status, 200)
  const exit = await app.exited
  t.equal(exit.code, 0)
  t.equal((await app.waitForLog(hasMessage(/shutdown started/))).reason, 'SIGINT')
})

t.test('a signal not in `signals` does not start the shutdown', async t => {
  const app = await startApp(t, { options: { signals: ['SIGTERM'] } })
  // SIGUSR2 has no handler of ours, so Node's default applies: the process is killed by it.
  app.kill('SIGUSR2')
  const exit = await app.exited
  t.equal(exit.signal, 'SIGUSR2')
  t.notOk(app.logs.some(hasMessage(/shutdown started/)))
})

t.test('readinessDelay: keeps accepting and serving while readiness is 503, then stops accepting', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000, readinessDelay: 1500 } })
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))

  t.equal((await request(app.port, '/ready')).status, 503, 'readiness fails at once')
  const served = await request(app.port, '/slow?ms=1')
  t.equal(served.status, 200, 'a request during readinessDelay is served')
  t.equal(served.headers.connection, 'close')

  const stopped = await app.waitForLog(hasMessage(/stopped accepting connections/))
  t.ok((stopped.elapsedMs as number) >= 1400, `the listener closes after the delay (${stopped.elapsedMs} ms)`)
  const exit = await app.exited
  t.equal(exit.code, 0)
})

t.test('keep-alive: idle sockets are closed and a kept-alive request does not hold the process', async t => {
  // gracePeriod far above the test's bound: only a prompt close can pass it, not the deadline.
  const app = await startApp(t, { options: { gracePeriod: 60_000 } })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 })
  t.teardown(() => agent.destroy())

  // Two sockets kept alive: one will sit idle, the other carries a request across the signal.
  const [idleWarmup, busyWarmup] = await Promise.all([
    request(app.port, '/slow?ms=100', { agent }),
    request(app.port, '/slow?ms=100', { agent })
  ])
  t.equal(idleWarmup.headers.connection, 'keep-alive')
  t.equal(busyWarmup.headers.connection, 'keep-alive')
  const sockets = Object.values(agent.freeSockets).flat()
  t.equal(sockets.length, 2, 'two idle keep-alive sockets')
  const closed = sockets.map(socket => once(socket!, 'close'))

  const inFlight = request(app.port, '/slow?ms=800', { agent })
  await app.waitForLog(requestFor('/slow?ms=800'))
  app.kill('SIGTERM')

  const finished = await inFlight
  t.equal(finished.status, 200)
  t.equal(finished.headers.connection, 'close', 'the kept-alive request is told to close')
  await Promise.all(closed)
  t.pass('both keep-alive sockets were closed by the server')

  const exit = await app.exited
  t.equal(exit.code, 0)
  const lastResponseToExitMs = exit.at - finished.endedAt
  t.comment(`keep-alive: last response to exit ${lastResponseToExitMs.toFixed(1)} ms`)
  t.ok(lastResponseToExitMs < 5000, 'exits long before keepAliveTimeout (72 s) or the deadline')
})

t.test('a client that aborts mid-request does not hold the drain', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 } })
  const req = http.get({ host: '127.0.0.1', port: app.port, path: '/slow?ms=30000', agent: false })
  req.on('error', () => {})
  await app.waitForLog(requestFor('/slow?ms=30000'))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  req.destroy()
  const exit = await app.exited
  t.equal(exit.code, 0, 'the aborted request no longer counts: clean drain')
})

t.test('deadline: pending work is logged and cut, exit 1 within gracePeriod', async t => {
  const gracePeriod = 3000
  const app = await startApp(t, { options: { gracePeriod } })
  const cut = request(app.port, '/slow?ms=30000').then(() => 'answered', (err: Error) => err.message)
  await app.waitForLog(requestFor('/slow?ms=30000'))
  const signalledAt = performance.now()
  app.kill('SIGTERM')

  const exit = await app.exited
  t.equal(exit.code, 1, 'exit 1 when the drain did not finish')
  const signalToExitMs = exit.at - signalledAt
  t.comment(`deadline: signal to exit ${signalToExitMs.toFixed(0)} ms (gracePeriod ${gracePeriod})`)
  t.ok(signalToExitMs < gracePeriod, 'the process does not outlive gracePeriod')
  t.equal(await cut, 'socket hang up', 'the pending request was cut')

  const pending = app.logs.find(hasMessage(/cut request still in flight/))
  t.ok(pending, 'the pending request is logged')
  t.match(pending, { level: LEVEL.error, method: 'GET', url: '/slow?ms=30000', id: String, ageMs: Number })
  t.ok(app.logs.some(hasMessage(/drain deadline reached/)))
})

t.test('a second signal exits at once with code 1', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 } })
  const cut = request(app.port, '/slow?ms=30000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=30000'))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 1)
  t.ok(app.logs.some(hasMessage(/second signal/)))
  t.equal(await cut, 'cut')
})

for (const [route, message] of [['/crash', 'uncaught on purpose'], ['/reject', 'rejected on purpose']] as const) {
  t.test(`${route}: an uncaught error drains like a signal, then exits 1`, async t => {
    const app = await startApp(t, { options: { gracePeriod: 10_000 } })
    const inFlight = request(app.port, '/slow?ms=800')
    await app.waitForLog(requestFor('/slow?ms=800'))
    t.equal((await request(app.port, route)).status, 200)

    const failure = await app.waitForLog(hasMessage(/uncaught error/))
    t.equal(failure.level, LEVEL.error)
    t.match(failure.err, { message })
    t.equal((await inFlight).status, 200, 'the request in flight still completes')
    const exit = await app.exited
    t.equal(exit.code, 1)
    t.ok(app.logs.some(hasMessage(/^drained/)))
  })
}

t.test('handleErrors: false leaves uncaught errors to the app, which keeps serving; SIGTERM still drains', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000, handleErrors: false }, env: { FIXTURE_OWN_ERROR_HANDLERS: '1' } })
  for (const [route, event, message] of [['/reject', 'unhandledRejection', 'rejected on purpose'], ['/crash', 'uncaughtException', 'uncaught on purpose']]) {
    t.equal((await request(app.port, route!)).status, 200)
    const handled = await app.waitForLog(line => line.msg === 'the app handled it' && line.event === event)
    t.equal(handled.message, message, `the app's own ${event} handler saw it`)
  }
  t.same((await request(app.port, '/stats')).json(), { state: 'serving', activeRequests: 1 }, 'still serving')

  const inFlight = request(app.port, '/slow?ms=800')
  await app.waitForLog(requestFor('/slow?ms=800'))
  app.kill('SIGTERM')
  t.equal((await inFlight).status, 200, 'the request in flight at SIGTERM completes')
  t.equal((await app.exited).code, 0, 'the signal drained as usual')
  t.notOk(app.logs.some(hasMessage(/uncaught error/)), 'the plugin took no part in the errors')
})

t.test('handleErrors: false without a handler of the app: Node\'s default, the process dies at once', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000, handleErrors: false } })
  const inFlight = request(app.port, '/slow?ms=5000').catch((err: NodeJS.ErrnoException) => err.code)
  await app.waitForLog(requestFor('/slow?ms=5000'))
  t.equal((await request(app.port, '/crash')).status, 200)
  const exit = await app.exited
  t.equal(exit.code, 1)
  t.match(app.stderr.join(''), /uncaught on purpose/, 'Node printed the error')
  t.notOk(app.logs.some(hasMessage(/shutdown started/)), 'no drain')
  t.equal(await inFlight, 'ECONNRESET', 'the request in flight was cut')
})

t.test('track(): background work holds the drain until it settles', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 } })
  const accepted = await request(app.port, '/background?ms=1000')
  t.same(accepted.json(), { accepted: true })
  app.kill('SIGTERM')
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.equal(started.pendingTasks, 1)
  const exit = await app.exited
  t.equal(exit.code, 0)
  // Compared by the time each line was logged, not by its place on stdout: pino writes in the
  // background and flushes what is left synchronously at exit, so under load lines can swap.
  const done = app.logs.find(line => line.msg === 'background work done')
  const drained = app.logs.find(hasMessage(/^drained/))
  t.ok(done !== undefined && drained !== undefined && (done.time as number) <= (drained.time as number),
    'the drain ends after the background work')
})

t.test('track(): background work still running at the deadline is logged and cut, exit 1', async t => {
  const gracePeriod = 3000
  const app = await startApp(t, { options: { gracePeriod } })
  t.same((await request(app.port, '/background?ms=30000')).json(), { accepted: true })
  const signalledAt = performance.now()
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 1, 'exit 1: the drain did not finish')
  t.ok(exit.at - signalledAt < gracePeriod, 'within gracePeriod')

  const deadline = app.logs.find(hasMessage(/drain deadline reached/))
  t.match(deadline, { level: LEVEL.error, activeRequests: 0, pendingTasks: 1, elapsedMs: Number })
  const cut = app.logs.find(hasMessage(/cut task still in flight/))
  t.match(cut, { level: LEVEL.error, kind: 'task', ageMs: Number }, 'the pending task is logged')
  t.ok((cut!.ageMs as number) >= 1000, `with its age (${cut!.ageMs} ms)`)
  t.notOk(app.logs.some(hasMessage(/background work done/)), 'it never finished')
})

t.test('graceful.signal ends a long poll when the drain starts', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 } })
  const poll = request(app.port, '/long-poll')
  await app.waitForLog(requestFor('/long-poll'))
  app.kill('SIGTERM')
  const response = await poll
  t.equal(response.status, 200)
  t.same(response.json(), { ended: 'shutdown' })
  t.equal((await app.exited).code, 0)
})

t.test('two instances in one process both drain before the exit', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, instances: 2 })
  const [first, second] = app.ports as [number, number]
  const short = request(first, '/slow?ms=300')
  const long = request(second, '/slow?ms=1200')
  await app.waitForLog(line => line.instance === 1 && requestFor('/slow?ms=1200')(line))
  await app.waitForLog(line => line.instance === 0 && requestFor('/slow?ms=300')(line))
  app.kill('SIGTERM')
  t.equal((await short).status, 200)
  t.equal((await long).status, 200, 'the slower instance is not cut by the faster one')
  t.equal((await app.exited).code, 0)
  const completes = app.logs.filter(hasMessage(/shutdown complete/)).map(line => line.instance).sort()
  t.same(completes, [0, 1])
})
