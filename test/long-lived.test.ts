// Streams and WebSockets through a real SIGTERM: they finish inside the drain, or end the way their
// protocol allows at its deadline, never as a bare cut.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import WebSocket from 'ws'
import { hasMessage, startApp, type AppProcess } from './helpers/app-process.js'
import { openEventStream, request } from './helpers/http.js'

interface Session { socket: WebSocket, closed: Promise<{ code: number, reason: string, at: number }> }

async function openWebSocket (port: number): Promise<Session> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  const closed = once(socket, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason), at: performance.now() }))
  await once(socket, 'open')
  socket.send('ping')
  const [echo] = await once(socket, 'message')
  if (String(echo) !== 'ping') throw new Error(`echo: ${String(echo)}`)
  return { socket, closed }
}

function startWebSocketApp (t: Test, options: object): Promise<AppProcess> {
  return startApp(t, { options, env: { FIXTURE_WEBSOCKET: '1' } })
}

t.test('an event stream in flight at SIGTERM delivers every event, then exit 0', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 } })
  const stream = await openEventStream(app.port, '/events?n=20&ms=50')
  app.kill('SIGTERM')
  t.equal(await stream.ended, 'end')
  t.same(stream.events, Array.from({ length: 20 }, (_, i) => `data: token ${i}`), 'every token, none after the end')
  t.equal((await app.exited).code, 0)
})

t.test('an event stream still running at the deadline gets the final event, then a clean end', async t => {
  const app = await startApp(t, { options: { gracePeriod: 3000 } })
  const stream = await openEventStream(app.port, '/events?n=1000&ms=50')
  const signalledAt = performance.now()
  app.kill('SIGTERM')
  t.equal(await stream.ended, 'end', 'the response ends; it is not cut')
  t.equal(stream.events.at(-1), 'event: shutdown\ndata: {"reason":"the server is shutting down"}', 'the last event is the final event')
  t.ok(stream.events.length > 10, `tokens came until then (${stream.events.length - 1})`)
  const exit = await app.exited
  t.equal(exit.code, 1, 'the drain did not finish')
  t.ok(exit.at - signalledAt < 3000, 'within gracePeriod')
  t.match(app.logs.find(hasMessage(/cut request still in flight/)), { url: '/events?n=1000&ms=50' })
  t.match(app.logs.find(hasMessage(/ending event streams/)), { eventStreams: 1, webSockets: 0 })
})

t.test('a WebSocket open at the deadline gets 1001 Going Away before the exit', async t => {
  const app = await startWebSocketApp(t, { gracePeriod: 3000 })
  const session = await openWebSocket(app.port)
  const signalledAt = performance.now()
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  session.socket.send('still here')
  t.equal(String((await once(session.socket, 'message'))[0]), 'still here', 'the session keeps running while the drain waits')

  const closed = await session.closed
  t.same({ code: closed.code, reason: closed.reason }, { code: 1001, reason: 'server shutting down' })
  const exit = await app.exited
  t.ok(closed.at <= exit.at, 'the close frame came before the exit')
  t.equal(exit.code, 1, 'the drain did not finish')
  t.ok(exit.at - signalledAt < 3000, `within gracePeriod (${(exit.at - signalledAt).toFixed(0)} ms)`)
  t.match(app.logs.find(hasMessage(/ending event streams/)), { eventStreams: 0, webSockets: 1 })
})

t.test('closeWebSockets: on-drain closes them with 1001 at SIGTERM, and the drain ends', async t => {
  const app = await startWebSocketApp(t, { gracePeriod: 30_000, closeWebSockets: 'on-drain' })
  const session = await openWebSocket(app.port)
  app.kill('SIGTERM')
  const closed = await session.closed
  t.equal(closed.code, 1001)
  t.equal((await app.exited).code, 0, 'the session was the last thing in flight')
  t.match(app.logs.find(hasMessage(/sent 1001 Going Away/)), { webSockets: 1 })
})

t.test('a session its client ends during the drain lets the process exit 0; a new one is refused', async t => {
  const app = await startWebSocketApp(t, { gracePeriod: 30_000 })
  const session = await openWebSocket(app.port)
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/stopped accepting connections/))
  const refused = new WebSocket(`ws://127.0.0.1:${app.port}/ws`)
  const [error] = await once(refused, 'error') as [NodeJS.ErrnoException]
  t.equal(error.code, 'ECONNREFUSED', 'a new WebSocket is refused like any new connection')
  t.equal((await request(app.port, '/ready').catch((err: NodeJS.ErrnoException) => err.code)), 'ECONNREFUSED')

  session.socket.close(1000, 'done')
  t.equal((await session.closed).code, 1000)
  t.equal((await app.exited).code, 0)
  t.notOk(app.logs.some(line => line.url === '/ws' && hasMessage(/^cut /)(line)), 'the session was not cut')
  t.match(app.logs.find(hasMessage(/^shutdown complete$/)), { requests: { inFlightAtStart: 1, served: 1, abandoned: 0, cut: 0 } },
    'a session that closed during the drain counts as served')
})
