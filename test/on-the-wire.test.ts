// What a client has already sent when the drain closes its connection or the listener: requests
// pipelined without end, requests not yet read when the last response goes out, connections the
// kernel accepted that the app had not. Raw sockets, so the moment of each write is the test's,
// and under a CPU hog, so the app's event loop lags as on a busy replica.
import t from 'tap'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Connections } from '../lib/connections.js'
import { hasMessage, isIncomingRequest, requestFor, startApp, type AppProcess } from './helpers/app-process.js'
import { startChurn } from './helpers/churn.js'
import { startCpuHog } from './helpers/cpu-hog.js'
import { failure, get, rawClient, request, type Ending, type RawClient } from './helpers/http.js'

/** The URLs of the requests the app ran, in the order it received them (among its first `lines` log lines). */
const requestsRun = (app: AppProcess, prefix: string, lines = app.logs.length): string[] => app.logs.slice(0, lines)
  .filter(line => isIncomingRequest(line) && ((line.req as { url: string }).url.startsWith(prefix)))
  .map(line => (line.req as { url: string }).url)

/** One keep-alive request on a new raw connection, answered: the connection is now idle and known to the app. */
async function idleKeepAlive (t: Parameters<typeof rawClient>[0], port: number): Promise<RawClient> {
  const client = await rawClient(t, port)
  client.socket.write(get('/slow?ms=1'))
  const first = await client.response(1)
  if (first.headers.connection !== 'keep-alive') throw new Error(`expected a keep-alive response, got ${JSON.stringify(first.headers)}`)
  return client
}

t.test('a client that always keeps a request pipelined: its connection closes within a bounded number of responses', async t => {
  startCpuHog(t)
  const app = await startApp(t, { options: { gracePeriod: 5000 } })
  const signalAfter = 5
  const client = await rawClient(t, app.port, (_response, count) => {
    if (count === signalAfter) app.kill('SIGTERM')
  })
  // As a pipelining client or proxy under steady load: a request every 25 ms, each answered after
  // 100 ms, so several are always waiting behind the one being answered.
  let written = 0
  const write = (): void => { client.socket.write(get(`/slow?ms=100&seq=${++written}`)) }
  write()
  const writer = setInterval(() => { if (written < 300 && client.socket.writable) write() }, 25)
  t.teardown(() => clearInterval(writer))

  const ending = await client.closed
  const { responses } = client
  const afterSignal = responses.length - signalAfter
  t.comment(`pipelined: ${written} requests written, ${responses.length} answered (${afterSignal} after the signal), ` +
    `connection headers ${JSON.stringify(responses.slice(signalAfter).map(response => response.headers.connection))}, ` +
    `ended with ${ending.fin ? 'a FIN' : 'no FIN'}${ending.error === undefined ? '' : `, then ${ending.error}`}`)
  t.ok(afterSignal >= 1 && afterSignal <= 8, `closed within 8 responses after the signal (${afterSignal})`)
  t.ok(responses.every(response => response.status === 200), 'every answer is a 200')
  t.same(responses.map(response => response.headers.connection),
    [...Array(responses.length - 1).fill('keep-alive'), 'close'], 'only the last answer says Connection: close')
  t.ok(written > responses.length, 'the client had pipelined more than was answered')
  t.same(requestsRun(app, '/slow?ms=100'), responses.map((_, index) => `/slow?ms=100&seq=${index + 1}`),
    'the app ran exactly the requests it answered, in order: what followed was never run')
  const drainStarted = app.logs.findIndex(hasMessage(/shutdown started/))
  t.same(requestsRun(app, '/slow?ms=100', drainStarted), requestsRun(app, '/slow?ms=100'),
    'and it had read every one of them before the drain started')
  t.same(ending, { fin: true, error: undefined }, 'the connection ended with a FIN, not a reset')

  const exit = await app.exited
  t.equal(exit.code, 0, 'exit 0: the drain did not wait for the deadline')
  t.notOk(app.logs.some(hasMessage(/cut request/)), 'nothing was cut')
})

t.test('requests that arrive while the last response is computed are read and answered, not reset', async t => {
  startCpuHog(t)
  const app = await startApp(t, { options: { gracePeriod: 10_000, readinessDelay: 300 } })
  const computing = await idleKeepAlive(t, app.port)
  const keptAlive = await idleKeepAlive(t, app.port)
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  // Accepted during readinessDelay, their requests not written yet; a request on a new connection
  // answered after them shows that the app has accepted them.
  const fresh = await rawClient(t, app.port)
  const silent = await rawClient(t, app.port)
  t.equal((await request(app.port, '/health')).status, 200)

  // The last request in flight keeps the event loop busy past the end of readinessDelay: these
  // requests wait in the kernel, unread, when it is answered and the drain can end.
  computing.socket.write(get('/cpu?ms=1000'))
  await app.waitForLog(requestFor('/cpu?ms=1000'))
  keptAlive.socket.write(get('/slow?ms=1&on=kept-alive'))
  fresh.socket.write(get('/slow?ms=1&on=fresh'))

  const [computed, keptAliveEnding, freshEnding, silentEnding] = await Promise.all([computing, keptAlive, fresh, silent].map(client => client.closed)) as [Ending, Ending, Ending, Ending]
  const outcome = (client: RawClient, ending: Ending): string =>
    `${client.responses.map(response => `${response.status} ${response.headers.connection}`).join(', ') || 'no response'}; ` +
    `${ending.fin ? 'FIN' : 'no FIN'}${ending.error === undefined ? '' : `, ${ending.error}`}`
  t.comment(`unread at the last response: kept-alive: ${outcome(keptAlive, keptAliveEnding)}; fresh: ${outcome(fresh, freshEnding)}; ` +
    `silent: ${outcome(silent, silentEnding)}`)
  t.match(computing.responses.at(-1), { status: 200, headers: { connection: 'close' } }, 'the request in flight is answered')
  t.same(computed, { fin: true, error: undefined })
  for (const [name, client, ending] of [['kept-alive', keptAlive, keptAliveEnding], ['fresh', fresh, freshEnding]] as const) {
    t.match(client.responses.at(-1), { status: 200, headers: { connection: 'close' } }, `${name}: its request is answered, with Connection: close`)
    t.same(ending, { fin: true, error: undefined }, `${name}: then a FIN, no reset`)
  }
  t.same(silent.responses, [])
  t.same(silentEnding, { fin: true, error: undefined }, 'a connection that sent nothing ends with a FIN')
  t.equal((await app.exited).code, 0)
})

t.test('connections the kernel completed while the event loop was busy are served when the listener closes, not reset', async t => {
  startCpuHog(t)
  const app = await startApp(t, { options: { gracePeriod: 10_000, readinessDelay: 300 } })
  const computing = await idleKeepAlive(t, app.port)
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  // Busy past the end of readinessDelay: the listener is due to close while these connections
  // wait in its accept queue, their requests sent.
  computing.socket.write(get('/cpu?ms=1500'))
  await app.waitForLog(requestFor('/cpu?ms=1500'))
  const queued = await Promise.all(Array.from({ length: 20 }, () => rawClient(t, app.port)))
  queued.forEach((client, index) => client.socket.write(get(`/slow?ms=1&queued=${index}`)))

  const endings = await Promise.all(queued.map(client => client.closed))
  const answered = queued.filter(client => client.responses.at(-1)?.status === 200).length
  const reset = endings.filter(ending => ending.error !== undefined).length
  t.comment(`accept queue at the listener's close: ${answered} of ${queued.length} answered, ${reset} reset`)
  for (const [index, client] of queued.entries()) {
    t.match(client.responses, [{ status: 200, headers: { connection: 'close' } }], `queued connection ${index}: answered, with Connection: close`)
    t.same(endings[index], { fin: true, error: undefined }, `queued connection ${index}: then a FIN, no reset`)
  }
  t.equal(await failure(request(app.port, '/health')), 'ECONNREFUSED', 'the listener is closed')
  t.equal((await app.exited).code, 0)
})

t.test('churn through the shutdown: no request is reset after it was sent, and every answer is one the app counted', async t => {
  startCpuHog(t)
  const app = await startApp(t, { options: { gracePeriod: 10_000, readinessDelay: 500 } })
  const churn = startChurn(t, { port: app.port, perRequest: 200, keepAlive: 50, path: '/slow?ms=20' })
  await churn.answered(1000)
  app.kill('SIGTERM')
  const outcome = await churn.finished
  const exit = await app.exited
  const answeredByApp = app.logs.filter(line => line.msg === 'request completed' && (line.res as { statusCode: number }).statusCode === 200).length
  const stopped = app.logs.find(hasMessage(/stopped accepting/))
  const drained = app.logs.find(hasMessage(/^drained/))
  t.comment(`churn: ${JSON.stringify(outcome)}; the app answered ${answeredByApp} with a 200; ` +
    `stopped accepting at ${stopped?.elapsedMs} ms (${stopped?.acceptedWhileClosing} accepted while closing), drained at ${drained?.elapsedMs} ms; exit code ${exit.code}`)
  t.equal(outcome.resetAfterSent, 0, 'no request was reset after it was sent')
  t.equal(outcome.statuses[200], answeredByApp, 'every 200 the clients saw is one the app counted, and the reverse')
  t.same(Object.keys(outcome.statuses), ['200'], 'nothing but 200s')
  t.ok(outcome.refused >= 250, 'every client stopped on a refused connection')
  t.equal(exit.code, 0)
})

t.test('new connections arriving faster than the event loop accepts them: the listener still closes a second after the decision', async t => {
  const server = http.createServer((_request, response) => response.end('ok'))
  const connections = new Connections({ onRequestEnd: () => {}, isProbe: () => false })
  connections.watch(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const clients: net.Socket[] = []
  t.teardown(() => {
    for (const client of clients) client.destroy()
    server.close()
  })
  // A lagging loop (5 ms a turn) that accepts one connection a turn while two more arrive:
  // its accept queue never empties.
  let flooding = true
  const flood = (): void => {
    const until = performance.now() + 5
    while (performance.now() < until);
    for (let index = 0; index < 2; index++) clients.push(net.connect(port, '127.0.0.1').on('error', () => {}))
    if (flooding) setImmediate(flood)
  }
  flood()
  await once(server, 'connection')
  const startedAt = performance.now()
  const accepted = await connections.stopAccepting()
  flooding = false
  const elapsedMs = performance.now() - startedAt
  t.comment(`flood: the listener closed after ${elapsedMs.toFixed(0)} ms, ${accepted} connections accepted meanwhile`)
  t.equal(server.listening, false, 'the listener is closed')
  t.ok(elapsedMs >= 1000 && elapsedMs < 1500, `a second after the decision (${elapsedMs.toFixed(0)} ms)`)
  t.ok(accepted > 50, `accepting one a turn until then (${accepted})`)
})

t.test('a connection the kernel completes just before the listener closes is accepted and served, not reset', async t => {
  const server = http.createServer((_request, response) => response.end('ok'))
  const connections = new Connections({ onRequestEnd: () => {}, isProbe: () => false })
  connections.watch(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  t.teardown(() => server.close())
  // Queued before stopAccepting()'s own check, so it runs just ahead of it in every turn: in the
  // second, whose poll accepted nothing, it connects (on loopback the kernel completes the
  // handshake within connect()), and only the kernel knows of the connection when the check runs.
  let client!: net.Socket
  let turns = 0
  const connectAheadOfTheClose = (): void => {
    if (++turns < 2) {
      setImmediate(connectAheadOfTheClose)
      return
    }
    client = net.connect(port, '127.0.0.1')
    client.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  }
  setImmediate(connectAheadOfTheClose)
  const accepted = await connections.stopAccepting()
  t.equal(server.listening, false, 'the listener is closed')
  let received = ''
  client.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  const [error] = await Promise.race([once(client, 'error'), once(client, 'end').then(() => [undefined])]) as [NodeJS.ErrnoException | undefined]
  t.equal(error?.code, undefined, 'no reset')
  t.match(received, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok$/, 'answered, then a FIN')
  t.equal(accepted, 1, 'accepted before the listener closed')
})
