// What a client has already sent when the drain closes its connection or the listener: requests
// pipelined without end, requests not yet read when the last response goes out, connections the
// kernel accepted that the app had not. Raw sockets, so the moment of each write is the test's,
// and under a CPU hog, so the app's event loop lags as on a busy replica.
import t from 'tap'
import { hasMessage, isIncomingRequest, requestFor, startApp, type AppProcess } from './helpers/app-process.js'
import { startCpuHog } from './helpers/cpu-hog.js'
import { get, rawClient, request, type Ending, type RawClient } from './helpers/http.js'

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
