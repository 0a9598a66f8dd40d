// Every kind of connection a client can leave open, over real sockets to a spawned app: pipelined
// requests, silent and half-sent sockets, TLS, HTTP/2, a second listening address, and uploads
// refused with a 503 while their body is still on its way.
import t, { type Test } from 'tap'
import http from 'node:http'
import https from 'node:https'
import http2 from 'node:http2'
import net from 'node:net'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { hasMessage, isIncomingRequest, requestFor, startApp, type AppProcess } from './helpers/app-process.js'
import { connect, failure, openConnections, parseResponses, request } from './helpers/http.js'

const CA = readFileSync(new URL('fixtures/tls/cert.pem', import.meta.url))
/** Everything the server sends on a socket until it closes it. */
function readUntilClosed (socket: net.Socket): Promise<string> {
  const chunks: Buffer[] = []
  socket.on('data', chunk => chunks.push(chunk))
  return once(socket, 'close').then(() => Buffer.concat(chunks).toString('utf8'))
}

/** The in-flight count as /ready reports it, once it is `expected` (bounded: a leak stays put). */
async function activeRequestsSettleAt (port: number, expected: number): Promise<number> {
  let active = -1
  for (let attempt = 0; attempt < 100 && active !== expected; attempt++) {
    if (attempt > 0) await new Promise(resolve => setTimeout(resolve, 50))
    active = (await request(port, '/ready')).json().active_requests
  }
  return active
}

async function assertCleanExit (t: Test, app: AppProcess): Promise<void> {
  const exit = await app.exited
  t.equal(exit.code, 0, 'exit 0')
  t.ok(app.logs.some(hasMessage(/onClose hook ran/)), 'the app\'s onClose hooks ran')
  t.notOk(app.logs.some(hasMessage(/cut request/)), 'nothing was cut at a deadline')
}

t.test('pipelined requests on a socket that dies end with it: no count, no slot leaks', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000, maxConcurrency: 2, maxQueue: 2 } })
  const pipelined = 'GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2)
  const clients = await Promise.all([connect(t, app.port), connect(t, app.port)])
  for (const client of clients) client.write(pipelined)
  await app.waitForLog(line => isIncomingRequest(line) && line.reqId === 'req-4')
  for (const client of clients) client.destroy()

  t.equal(await activeRequestsSettleAt(app.port, 0), 0, 'the four requests no longer count once their sockets are gone')
  const answers = await Promise.all([1, 2, 3, 4].map(() => request(app.port, '/slow?ms=10')))
  t.same(answers.map(answer => answer.status), [200, 200, 200, 200], 'every slot and queue place was given back')

  const signalledAt = performance.now()
  app.kill('SIGTERM')
  await assertCleanExit(t, app)
  t.ok(performance.now() - signalledAt < 10_000, 'the drain waited for no request long gone')
})

t.test('pipelined requests at SIGTERM: every one answered, only the last closes the socket', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 } })
  const client = await connect(t, app.port)
  const received = readUntilClosed(client)
  client.write(['/slow?ms=400', '/slow?ms=100', '/slow?ms=200']
    .map(path => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''))
  await app.waitForLog(requestFor('/slow?ms=200'))
  app.kill('SIGTERM')

  const responses = parseResponses(await received)
  t.same(responses.map(response => response.status), [200, 200, 200], 'three responses, in order')
  t.same(responses.map(response => JSON.parse(response.body).slept), [400, 100, 200])
  t.same(responses.map(response => response.headers.connection), ['keep-alive', 'keep-alive', 'close'],
    'only the last response closes the connection')
  await assertCleanExit(t, app)
})

t.test('sockets that carry no request do not hold the exit, with Fastify\'s default options', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 } })
  const silent = await connect(t, app.port)
  const slowloris = await connect(t, app.port)
  slowloris.write('GET /slow HTTP/1.1\r\nHost: x\r\n')
  const idle = await openConnections(t, app.port, 1)
  const [idleSocket] = Object.values(idle.freeSockets).flat()
  const closedByServer = [silent, slowloris, idleSocket!].map(socket => once(socket, 'close'))

  const inFlight = request(app.port, '/slow?ms=300')
  await app.waitForLog(requestFor('/slow?ms=300'))
  app.kill('SIGTERM')
  const finished = await inFlight
  t.equal(finished.status, 200)
  await Promise.all(closedByServer)
  t.pass('the silent, half-sent and idle keep-alive sockets were closed')
  const exit = await app.exited
  const lastResponseToExitMs = exit.at - finished.endedAt
  t.comment(`sockets without a request: last response to exit ${lastResponseToExitMs.toFixed(1)} ms`)
  t.ok(lastResponseToExitMs < 2000, 'exit follows the last response, not a close budget running out')
  await assertCleanExit(t, app)
  t.match(app.logs.find(hasMessage(/^drained/)), { closedIdleConnections: 3 })
})

t.test('a client that keeps its side open after the FIN is cut after half of close\'s time: the exit is not held', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 } })
  // A client that reads the FIN and never closes its own side (allowHalfOpen).
  const stubborn = net.connect({ port: app.port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => stubborn.destroy())
  stubborn.on('error', () => {})
  await once(stubborn, 'connect')
  const finReceived = once(stubborn, 'end')
  // A round trip on another connection: the app has accepted the first by then.
  t.equal((await request(app.port, '/health')).status, 200)

  const signalledAt = performance.now()
  app.kill('SIGTERM')
  await finReceived
  t.pass('the idle connection got a FIN')
  const exit = await app.exited
  const signalToExitMs = exit.at - signalledAt
  t.comment(`a client keeping its side open: signal to exit ${signalToExitMs.toFixed(0)} ms`)
  t.ok(signalToExitMs < 3000, 'the exit waited half of close\'s time at most, not for the client')
  t.match(app.logs.find(hasMessage(/kept their side open/)), { keptOpen: 1 })
  await assertCleanExit(t, app)
})

t.test('TLS: a connection still in its handshake does not hold the exit', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 }, env: { FIXTURE_TLS: '1' } })
  const handshaking = await connect(t, app.port)
  const closed = once(handshaking, 'close')
  const inFlight = new Promise<number>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: app.port, path: '/slow?ms=300', ca: CA, agent: false }, response => {
      response.resume()
      response.on('end', () => resolve(response.statusCode!))
    }).on('error', reject)
  })
  await app.waitForLog(requestFor('/slow?ms=300'))
  app.kill('SIGTERM')
  t.equal(await inFlight, 200)
  await closed
  await assertCleanExit(t, app)
})

for (const secure of [false, true]) {
  t.test(`HTTP/2${secure ? ' over TLS' : ''}: GOAWAY to every session, streams finish, a 503 has no connection header`, async t => {
    const app = await startApp(t, {
      options: { gracePeriod: 60_000, readinessDelay: 1000, maxConcurrency: 1 },
      fastify: { http2: true },
      env: secure ? { FIXTURE_TLS: '1' } : {}
    })
    const origin = `${secure ? 'https' : 'http'}://127.0.0.1:${app.port}`
    const session = http2.connect(origin, secure ? { ca: CA } : {})
    const idleSession = http2.connect(origin, secure ? { ca: CA } : {})
    t.teardown(() => { session.destroy(); idleSession.destroy() })
    await Promise.all([once(session, 'connect'), once(idleSession, 'connect')])
    const goaway = once(session, 'goaway')
    const idleClosed = once(idleSession, 'close')

    const stream = (path: string) => {
      const req = session.request({ ':path': path })
      const chunks: Buffer[] = []
      req.on('data', chunk => chunks.push(chunk))
      return Promise.all([once(req, 'response'), once(req, 'end')])
        .then(([[headers]]) => ({ headers: headers as http2.IncomingHttpHeaders, body: Buffer.concat(chunks).toString() }))
    }
    const inFlight = stream('/slow?ms=1500')
    await app.waitForLog(requestFor('/slow?ms=1500'))
    app.kill('SIGTERM')
    await app.waitForLog(hasMessage(/shutdown started/))

    const refused = await stream('/slow?ms=1')
    t.equal(refused.headers[':status'], 503, 'no free slot while draining')
    t.equal(refused.headers['retry-after'], '1')
    t.equal(refused.headers.connection, undefined, 'no connection header on HTTP/2')
    t.equal(JSON.parse(refused.body).code, 'FST_GRACEFUL_SHUTTING_DOWN')

    await goaway
    t.pass('the session got GOAWAY once the app stopped accepting')
    const finished = await inFlight
    t.equal(finished.headers[':status'], 200, 'the stream in flight finished')
    t.same(JSON.parse(finished.body), { slept: 1500 })
    await idleClosed
    await assertCleanExit(t, app)
    t.notMatch(app.stderr.join(''), /UnsupportedWarning/, 'Node warned about nothing')
  })
}

t.test('every listening address: both loopback servers stop accepting, and nothing on ::1 holds the exit', async t => {
  const app = await startApp(t, { options: { gracePeriod: 60_000 }, env: { FIXTURE_HOST: 'localhost' } })
  await app.waitForLog(hasMessage(/Server listening at http:\/\/\[::1\]/))
  const open = await openConnections(t, app.port, 1, '::1')
  const silent = await connect(t, app.port, '::1')
  const silentClosed = once(silent, 'close')

  const inFlight = request(app.port, '/slow?ms=800')
  await app.waitForLog(requestFor('/slow?ms=800'))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/stopped accepting connections/))
  t.equal(await failure(request(app.port, '/health', { host: '::1' })), 'ECONNREFUSED', '::1 stopped accepting')
  t.equal(await failure(request(app.port, '/health')), 'ECONNREFUSED', '127.0.0.1 stopped accepting')
  const served = await request(app.port, '/slow?ms=1', { agent: open, host: '::1' })
  t.equal(served.status, 200, 'a request on an open ::1 connection is served')
  t.equal(served.headers.connection, 'close')

  t.equal((await inFlight).status, 200)
  await silentClosed
  await assertCleanExit(t, app)
})

interface UploadResult { status?: number, code?: string, continued: boolean }

/** A 4 MB POST on a new connection; a reset or EPIPE before the response counts as lost. */
function upload (port: number, { expectContinue = false } = {}): Promise<UploadResult> {
  const body = Buffer.alloc(4 * 1024 * 1024, 'x')
  return new Promise(resolve => {
    let continued = false
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/upload',
      method: 'POST',
      agent: false,
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': body.length,
        ...(expectContinue ? { expect: '100-continue' } : {})
      }
    }, response => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode!, continued }))
      response.on('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code ?? err.message, continued }))
    })
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code ?? err.message, continued }))
    if (expectContinue) {
      req.on('continue', () => { continued = true; req.end(body) })
    } else {
      req.end(body)
    }
  })
}

async function uploadsRefused (t: Test, port: number, code: string): Promise<void> {
  const results: UploadResult[] = []
  for (let attempt = 0; attempt < 50; attempt++) results.push(await upload(port))
  const lost = results.filter(result => result.status === undefined)
  t.same(lost, [], `0 of 50 uploads lost to a reset (${lost.length})`)
  t.ok(results.every(result => result.status === 503), 'each got the 503')

  const held = await upload(port, { expectContinue: true })
  t.same(held, { status: 503, continued: false }, 'Expect: 100-continue: the 503 comes instead of 100 Continue')
  t.comment(`refused with ${code}: ${results.length - lost.length} of ${results.length} uploads answered 503`)
}

t.test('uploads refused while draining get their 503, never a reset', async t => {
  const app = await startApp(t, { options: { gracePeriod: 20_000, readinessDelay: 8000, maxConcurrency: 1 } })
  const holder = request(app.port, '/slow?ms=5000')
  await app.waitForLog(requestFor('/slow?ms=5000'))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  await uploadsRefused(t, app.port, 'FST_GRACEFUL_SHUTTING_DOWN')
  t.equal((await holder).status, 200)
  await assertCleanExit(t, app)
})

t.test('uploads refused for a full queue get their 503, never a reset; an admitted one gets 100 Continue', async t => {
  const app = await startApp(t, { options: { maxConcurrency: 1, maxQueue: 1, gracePeriod: 2000 } })
  const admitted = await upload(app.port, { expectContinue: true })
  t.same(admitted, { status: 200, continued: true }, 'a request let in is told to send its body')

  const holder = request(app.port, '/slow?ms=30000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=30000'))
  const queued = request(app.port, '/slow?ms=1').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=1'))
  await uploadsRefused(t, app.port, 'FST_GRACEFUL_QUEUE_FULL')
  // A SIGTERM rather than a kill, so that this process's coverage is written too.
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 1, 'the 30 s request was cut at the deadline')
  t.same(await Promise.all([holder, queued]), ['cut', 'cut'])
})
