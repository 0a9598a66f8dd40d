// What a client has already sent when the drain closes its connection or the listener: requests
// pipelined without end, requests not yet read when the last response goes out, connections the
// kernel accepted that the app had not. Raw sockets, so the moment of each write is the test's,
// and under a CPU hog, so the app's event loop lags as on a busy replica.
import t from 'tap'
import { hasMessage, isIncomingRequest, startApp, type AppProcess } from './helpers/app-process.js'
import { startCpuHog } from './helpers/cpu-hog.js'
import { get, rawClient } from './helpers/http.js'

/** The URLs of the requests the app ran, in the order it received them (among its first `lines` log lines). */
const requestsRun = (app: AppProcess, prefix: string, lines = app.logs.length): string[] => app.logs.slice(0, lines)
  .filter(line => isIncomingRequest(line) && ((line.req as { url: string }).url.startsWith(prefix)))
  .map(line => (line.req as { url: string }).url)

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
