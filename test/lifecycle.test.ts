// The instance's life in one process: states, listeners, manual shutdown, direct close.
import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import gracefulTermination from '../lib/index.js'
import { request } from './helpers/http.js'

const listeners = (): Record<string, number> => Object.fromEntries(
  ['SIGTERM', 'SIGINT', 'SIGHUP', 'uncaughtException', 'unhandledRejection', 'beforeExit']
    .map(event => [event, process.listenerCount(event)])
)

t.test('handleSignals: false installs no process listener', async t => {
  const before = listeners()
  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false })
  await app.ready()
  t.same(listeners(), before)
  await app.close()
})

t.test('handleSignals: true installs one set of listeners, fastify.close() removes them', async t => {
  const before = listeners()
  const app = Fastify()
  await app.register(gracefulTermination, { signals: ['SIGTERM'] })
  await app.ready()
  const during = listeners()
  t.equal(during.SIGTERM, before.SIGTERM! + 1)
  t.equal(during.uncaughtException, before.uncaughtException! + 1)
  t.equal(during.unhandledRejection, before.unhandledRejection! + 1)
  t.equal(during.SIGINT, before.SIGINT, 'a signal not asked for is left alone')
  t.equal(during.SIGHUP, before.SIGHUP)
  t.equal(during.beforeExit, before.beforeExit, 'no beforeExit handler')
  await app.close()
  t.same(listeners(), before)
})

t.test('handleErrors: false installs the signal listeners, not the error ones', async t => {
  const before = listeners()
  const app = Fastify()
  await app.register(gracefulTermination, { signals: ['SIGTERM'], handleErrors: false })
  await app.ready()
  const during = listeners()
  t.equal(during.SIGTERM, before.SIGTERM! + 1)
  t.equal(during.uncaughtException, before.uncaughtException)
  t.equal(during.unhandledRejection, before.unhandledRejection)
  await app.close()
  t.same(listeners(), before)
})

t.test('two instances share one set of listeners', async t => {
  const before = listeners()
  const first = Fastify()
  const second = Fastify()
  await first.register(gracefulTermination)
  await second.register(gracefulTermination, { signals: ['SIGTERM', 'SIGHUP'] })
  await Promise.all([first.ready(), second.ready()])
  const during = listeners()
  t.equal(during.SIGTERM, before.SIGTERM! + 1, 'one SIGTERM listener for both')
  t.equal(during.SIGINT, before.SIGINT! + 1)
  t.equal(during.SIGHUP, before.SIGHUP! + 1, 'the union of their signals')
  await first.close()
  t.equal(listeners().SIGHUP, before.SIGHUP! + 1, 'the remaining instance keeps its signals')
  t.equal(listeners().SIGINT, before.SIGINT, 'only the closed instance wanted SIGINT: released')
  await second.close()
  t.same(listeners(), before)
})

t.test('registering twice fails with fastify-plugin\'s message', async t => {
  const app = Fastify()
  app.register(gracefulTermination, { handleSignals: false })
  app.register(gracefulTermination, { handleSignals: false })
  await t.rejects(async () => { await app.ready() }, /graceful/)
  await app.close()
})

t.test('shutdown(): drains a real in-flight request, then closes; never twice', async t => {
  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false, gracePeriod: 10_000 })
  let release!: () => void
  const released = new Promise<void>(resolve => { release = resolve })
  let entered!: () => void
  const handlerEntered = new Promise<void>(resolve => { entered = resolve })
  app.get('/held', async () => { entered(); await released; return { released: true } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port

  const held = request(port, '/held')
  await handlerEntered
  t.equal(app.graceful.activeRequests, 1)
  const first = app.graceful.shutdown('deploy')
  t.equal(app.graceful.shutdown('again'), first, 'a second call returns the same promise')
  t.equal(app.graceful.state, 'draining')
  // Draining is waiting on the held request: give the loop a few turns to prove it stays so.
  await sleep(50)
  t.equal(app.graceful.state, 'draining', 'not closed while a request is in flight')
  release()
  const response = await held
  t.equal(response.status, 200)
  t.equal(response.headers.connection, 'close')
  const outcome = await first
  t.match(outcome, { reason: 'deploy', drained: true, closed: true })
  t.type(outcome.elapsedMs, 'number')
  t.equal(app.graceful.state, 'closed')
  t.equal(app.server.listening, false)
})

t.test('fastify.close() called directly: state, signal, and onClose hooks', async t => {
  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false })
  const seen: string[] = []
  app.addHook('onClose', async () => { seen.push(app.graceful.state) })
  await app.ready()
  t.equal(app.graceful.state, 'serving')
  await app.close()
  t.equal(app.graceful.signal.aborted, true, 'long-lived handlers are told to end')
  t.equal(app.graceful.state, 'closed')
  t.same(seen, ['closing'], 'onClose hooks see closing')
  t.match(await app.graceful.shutdown('late'), { reason: 'late', drained: true, closed: true },
    'shutdown() after close settles at once')
})

t.test('track(): a rejected task is logged and releases the drain', async t => {
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  await app.register(gracefulTermination, { handleSignals: false })
  await app.ready()
  const failing = Promise.reject(new Error('job failed'))
  t.equal(app.graceful.track(failing), failing, 'track returns the promise it was given')
  await t.rejects(failing)
  const outcome = await app.graceful.shutdown()
  t.equal(outcome.drained, true)
  t.match(lines.find(line => line.msg === 'tracked work rejected'), { err: { message: 'job failed' } })
})

t.test('an HTTP/2 server drains too (it has no keep-alive sockets to release)', async t => {
  const { connect } = await import('node:http2')
  const app = Fastify({ http2: true })
  await app.register(gracefulTermination, { handleSignals: false })
  app.get('/h2', async () => ({ protocol: 'h2' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = connect(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  t.teardown(() => session.close())
  const stream = session.request({ ':path': '/h2' })
  const [headers] = await once(stream, 'response') as [Record<string, unknown>]
  t.equal(headers[':status'], 200)
  stream.resume()
  await once(stream, 'end')
  session.close()
  t.match(await app.graceful.shutdown('h2'), { drained: true, closed: true })
})
