// maxConcurrency, maxQueue and queueTimeout over real TCP. Most tests run the app in this process
// (listening on port 0) so that handlers can wait on gates the test opens, in the order it
// chooses; the SIGTERM test spawns the fixture app, as the platform would run it.
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import http from 'node:http'
import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import gracefulTermination, { type GracefulTerminationOptions } from '../lib/index.js'
import { hasMessage, LEVEL, requestFor, startApp, type LogLine, type Teardown } from './helpers/app-process.js'
import { failure, openConnections, request, type Response } from './helpers/http.js'
import { LogWatcher } from './helpers/log-watcher.js'

/** The body of the plugin's 503 for a request it will not run. */
const refusal = (code: string, message: string) => ({ statusCode: 503, error: 'Service Unavailable', code, message })

interface Gate { opened: Promise<void>, open (): void }

function gate (): Gate {
  let open!: () => void
  const opened = new Promise<void>(resolve => { open = resolve })
  return { opened, open }
}

/**
 * An app with the plugin, listening on 127.0.0.1:0, whose `/work/:name` handler logs
 * 'handler started' and then waits until the test opens the gate of that name.
 */
async function startLimitedApp (t: Teardown, options: GracefulTerminationOptions) {
  const log = new LogWatcher<LogLine>()
  const app: FastifyInstance = Fastify({
    forceCloseConnections: true,
    logger: {
      level: 'debug',
      stream: { write: (raw: string) => log.add(JSON.parse(raw)) }
    }
  })
  await app.register(gracefulTermination, { handleSignals: false, ...options })

  const gates = new Map<string, Gate>()
  const gateOf = (name: string): Gate => {
    if (!gates.has(name)) gates.set(name, gate())
    return gates.get(name)!
  }
  let inHandlers = 0
  let mostInHandlers = 0
  const work = async (request: FastifyRequest<{ Params: { name: string } }>) => {
    const { name } = request.params
    mostInHandlers = Math.max(mostInHandlers, ++inHandlers)
    request.log.info({ name }, 'handler started')
    try {
      await gateOf(name).opened
    } finally {
      inHandlers--
    }
    return { name }
  }
  app.get('/work/:name', work)
  // The same work outside the limit, as a WebSocket or an event stream would be.
  app.get('/outside/:name', { config: { graceful: { limit: false } } }, work)
  app.get('/fast', async () => ({ fast: true }))
  app.get('/throw', async () => { throw new Error('handler failed on purpose') })
  app.post('/echo', { bodyLimit: 1024 }, async request => request.body)
  app.get('/stream', async (_request, reply) => reply.type('text/plain').send(Readable.from(['a\n', 'b\n'])))
  app.get('/hijack', async (_request, reply) => {
    reply.hijack()
    reply.raw.end('hijacked')
  })

  // Added after Fastify's own 'request' listener, so it sees a response close after the plugin did.
  const closed = new EventEmitter()
  app.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.once('close', () => closed.emit('close', req.url))
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  t.teardown(async () => {
    for (const { open } of gates.values()) open()
    await app.close()
  })

  const waitForLog = (match: (line: LogLine) => boolean): Promise<LogLine> => log.waitFor(match)

  return {
    graceful: app.graceful,
    port,
    waitForLog,
    open: (name: string) => gateOf(name).open(),
    mostInHandlers: () => mostInHandlers,
    /** Names whose handler started, in the order they started. */
    started: () => log.lines.filter(hasMessage(/^handler started$/)).map(line => line.name),
    /** Sends a request; a failure is left for whoever awaits it, never unhandled. */
    send (path: string, options: Parameters<typeof request>[2] = {}): Promise<Response> {
      const response = request(port, path, options)
      response.catch(() => {})
      return response
    },
    /** A request the test can hang up on: destroy() it. */
    sendAbortable (path: string): http.ClientRequest {
      const req = http.get({ host: '127.0.0.1', port, path, agent: false })
      req.on('error', () => {})
      return req
    },
    handlerStarted: (name: string) => waitForLog(line => line.msg === 'handler started' && line.name === name),
    /** Resolves once the request to `path` waits in the queue. */
    async queued (path: string): Promise<LogLine> {
      const { reqId } = await waitForLog(requestFor(path))
      return waitForLog(line => line.reqId === reqId && /request queued/.test(line.msg ?? ''))
    },
    /** Resolves when the next response to `path` closes; call it before sending. */
    responseClosed: (path: string) => new Promise<void>(resolve => {
      const listener = (url: string): void => {
        if (url !== path) return
        closed.off('close', listener)
        resolve()
      }
      closed.on('close', listener)
    })
  }
}

t.test('N run, M wait in arrival order, the (N+M+1)th is refused at once; probes never wait', async t => {
  const app = await startLimitedApp(t, { maxConcurrency: 2, maxQueue: 3 })
  const running = ['r0', 'r1'].map(name => app.send(`/work/${name}`))
  await Promise.all([app.handlerStarted('r0'), app.handlerStarted('r1')])
  const waiting = []
  for (const name of ['q0', 'q1', 'q2']) {
    waiting.push(app.send(`/work/${name}`))
    const queued = await app.queued(`/work/${name}`)
    t.match(queued, { level: LEVEL.debug, plugin: 'fastify-graceful-termination', running: 2 })
  }
  t.equal(app.graceful.queued, 3)

  // Every gate is still closed: this answer cannot have waited for a slot.
  const refused = await request(app.port, '/work/over')
  t.equal(refused.status, 503, 'the (N+M+1)th request is refused')
  t.equal(refused.headers['retry-after'], '1')
  t.same(refused.json(), refusal('FST_GRACEFUL_QUEUE_FULL', 'Every slot is busy and the queue is full; retry the request later.'))
  t.match(await app.waitForLog(hasMessage(/queue full: refused/)), { level: LEVEL.debug, running: 2, queued: 3 })

  const ready = await request(app.port, '/ready')
  t.equal(ready.status, 200, 'readiness is answered while every slot is busy')
  t.same(ready.json(), { status: 'ready', active_requests: 5, queued: 3 }, 'queued ones count as active')
  t.equal((await request(app.port, '/health')).status, 200, 'so is liveness')
  t.same(app.started(), ['r0', 'r1'], 'nothing else ran while both slots were busy')

  app.open('r0')
  app.open('r1')
  await app.handlerStarted('q1')
  app.open('q0')
  await app.handlerStarted('q2')
  app.open('q1')
  app.open('q2')
  const answers = await Promise.all([...running, ...waiting])
  t.same(answers.map(answer => answer.status), [200, 200, 200, 200, 200], 'every accepted request is served')
  t.same(answers.map(answer => answer.json().name), ['r0', 'r1', 'q0', 'q1', 'q2'])
  t.same(app.started(), ['r0', 'r1', 'q0', 'q1', 'q2'], 'queued requests ran in arrival order')
  t.equal(app.graceful.activeRequests, 0)
  t.equal(app.graceful.queued, 0)
})

t.test('a burst sent all at once: maxConcurrency run, the rest wait, never more at once', async t => {
  const app = await startLimitedApp(t, { maxConcurrency: 3, maxQueue: 20 })
  const names = Array.from({ length: 12 }, (_, i) => `burst${i}`)
  const answers = Promise.all(names.map(name => app.send(`/work/${name}`)))
  await app.waitForLog(line => /request queued/.test(line.msg ?? '') && line.queued === 9)
  t.equal(app.started().length, 3, 'three handlers run, nine requests wait')

  for (const name of names) app.open(name)
  t.same((await answers).map(answer => answer.status), names.map(() => 200))
  t.equal(app.started().length, 12)
  t.equal(app.mostInHandlers(), 3, 'never more than maxConcurrency handlers at once')
  t.equal(app.graceful.activeRequests, 0)
})

t.test('queueTimeout: a request that waits too long gets a 503 and never runs', async t => {
  const queueTimeout = 300
  const app = await startLimitedApp(t, { maxConcurrency: 1, maxQueue: 1, queueTimeout })
  const holder = app.send('/work/holder')
  await app.handlerStarted('holder')

  const sentAt = performance.now()
  const late = await app.send('/work/late')
  const waitedMs = late.endedAt - sentAt
  t.equal(late.status, 503)
  t.equal(late.headers['retry-after'], '1')
  t.same(late.json(), refusal('FST_GRACEFUL_QUEUE_TIMEOUT', 'No slot freed up within queueTimeout; retry the request later.'))
  t.ok(waitedMs >= queueTimeout - 10, `it waited queueTimeout first (${waitedMs.toFixed(0)} ms)`)
  t.match(await app.waitForLog(hasMessage(/no slot within queueTimeout/)), { level: LEVEL.debug, queueTimeout })
  t.equal(app.graceful.queued, 0)

  app.open('holder')
  t.equal((await holder).status, 200)
  app.open('after')
  t.equal((await app.send('/work/after')).status, 200, 'the slot is free for the next request')
  t.same(app.started(), ['holder', 'after'], 'the timed-out request never ran')
})

t.test('a client that hangs up while queued gives its place back and never runs', async t => {
  const app = await startLimitedApp(t, { maxConcurrency: 1, maxQueue: 1 })
  const holder = app.send('/work/holder')
  await app.handlerStarted('holder')
  const quitter = app.sendAbortable('/work/quitter')
  await app.queued('/work/quitter')
  t.equal(app.graceful.queued, 1)

  quitter.destroy()
  const left = await app.waitForLog(hasMessage(/client left while queued/))
  t.match(left, { level: LEVEL.debug, queued: 0 })
  t.same((await request(app.port, '/ready')).json(), { status: 'ready', active_requests: 1, queued: 0 })

  const next = app.send('/work/next')
  await app.queued('/work/next')
  t.pass('its place in the queue is taken by the next request, not refused')
  app.open('holder')
  await app.handlerStarted('next')
  app.open('next')
  t.same((await Promise.all([holder, next])).map(answer => answer.status), [200, 200])
  app.open('quitter')
  t.same(app.started(), ['holder', 'next'], 'the request whose client left never ran')
})

t.test('the slot is given back once, whatever happens to the response', async t => {
  // One slot and no queue: a slot kept would refuse the next request; one given back twice
  // would let two run at once.
  const app = await startLimitedApp(t, { maxConcurrency: 1 })
  const cases: Array<[string, string, () => Promise<unknown>]> = [
    ['a handler that throws', '/throw', async () => t.equal((await app.send('/throw')).status, 500)],
    ['a route that does not exist', '/nowhere', async () => t.equal((await app.send('/nowhere')).status, 404)],
    ['a body over bodyLimit', '/echo', async () => {
      const answer = await app.send('/echo', { method: 'POST', body: JSON.stringify({ pad: 'x'.repeat(2048) }), headers: { 'content-type': 'application/json' } })
      t.equal(answer.status, 413)
    }],
    ['a hijacked reply', '/hijack', async () => t.equal((await app.send('/hijack')).text, 'hijacked')],
    ['a streamed reply', '/stream', async () => t.equal((await app.send('/stream')).text, 'a\nb\n')],
    ['a client that hangs up mid-handler', '/work/abandoned', async () => {
      const req = app.sendAbortable('/work/abandoned')
      await app.handlerStarted('abandoned')
      req.destroy()
    }]
  ]
  for (const [what, path, run] of cases) {
    const closed = app.responseClosed(path)
    await run()
    await closed
    t.equal(app.graceful.activeRequests, 0, `${what}: nothing left in flight`)
    t.equal((await app.send('/fast')).status, 200, `${what}: the slot is free again`)
  }

  const holder = app.send('/work/holder')
  await app.handlerStarted('holder')
  const second = await app.send('/fast')
  t.equal(second.status, 503, 'still one slot, not more')
  t.equal(second.json().code, 'FST_GRACEFUL_QUEUE_FULL')
  app.open('holder')
  t.equal((await holder).status, 200)
})

t.test('draining: queued requests are still served, new ones take a free slot but never queue', async t => {
  const app = await startLimitedApp(t, { maxConcurrency: 2, maxQueue: 2, gracePeriod: 10_000, readinessDelay: 2000 })
  const running = ['r0', 'r1'].map(name => app.send(`/work/${name}`))
  await Promise.all([app.handlerStarted('r0'), app.handlerStarted('r1')])
  const queued = app.send('/work/q0')
  await app.queued('/work/q0')

  const outcome = app.graceful.shutdown('test')
  const refused = await app.send('/work/n0')
  t.equal(refused.status, 503, 'no slot free while draining: refused, not queued')
  t.equal(refused.json().code, 'FST_GRACEFUL_SHUTTING_DOWN')
  t.equal(refused.headers.connection, 'close')
  t.match(await app.waitForLog(hasMessage(/every slot busy while draining/)), { level: LEVEL.debug })
  const ready = await app.send('/ready')
  t.equal(ready.status, 503)
  t.same(ready.json(), { status: 'shutting_down', active_requests: 3, queued: 1 })

  app.open('r0')
  await app.handlerStarted('q0')
  t.pass('the request queued before the drain runs')
  app.open('r1')
  const late = app.send('/work/n1')
  await app.handlerStarted('n1')
  t.pass('during readinessDelay a new request still takes a free slot')
  app.open('q0')
  app.open('n1')
  const answers = await Promise.all([...running, queued, late])
  t.same(answers.map(answer => answer.status), [200, 200, 200, 200])
  t.same(answers.map(answer => answer.headers.connection), ['close', 'close', 'close', 'close'])
  t.match(await outcome, { drained: true, closed: true })
  t.same(app.started(), ['r0', 'r1', 'q0', 'n1'])
})

t.test('a route with limit: false runs while every slot is busy and the queue is full, and the drain waits for it', async t => {
  const app = await startLimitedApp(t, { maxConcurrency: 1, maxQueue: 1, gracePeriod: 10_000, readinessDelay: 2000 })
  const holder = app.send('/work/holder')
  await app.handlerStarted('holder')
  const queued = app.send('/work/queued')
  await app.queued('/work/queued')
  t.equal((await app.send('/work/over')).json().code, 'FST_GRACEFUL_QUEUE_FULL', 'the limit is full')

  const outside = app.send('/outside/s0')
  await app.handlerStarted('s0')
  t.same((await app.send('/ready')).json(), { status: 'ready', active_requests: 3, queued: 1 }, 'it counts as in flight, not as queued')
  app.open('s0')
  t.equal((await outside).status, 200, 'served while the slot was taken')

  const outcome = app.graceful.shutdown('test')
  const duringDrain = app.send('/outside/s1')
  await app.handlerStarted('s1')
  t.equal((await app.send('/work/late')).json().code, 'FST_GRACEFUL_SHUTTING_DOWN', 'a limited route finds no slot while draining')
  app.open('holder')
  app.open('queued')
  t.same((await Promise.all([holder, queued])).map(answer => answer.status), [200, 200])
  await app.waitForLog(hasMessage(/stopped accepting connections/))
  t.equal(app.graceful.state, 'draining', 'the drain waits for the request outside the limit')
  t.equal(app.graceful.activeRequests, 1)
  app.open('s1')
  t.equal((await duringDrain).status, 200)
  t.match(await outcome, { drained: true, closed: true })
  t.same(app.started(), ['holder', 's0', 's1', 'queued'])
})

t.test('SIGTERM with a full queue: every accepted request is served, new ones refused, exit 0', async t => {
  const app = await startApp(t, {
    options: { gracePeriod: 10_000, maxConcurrency: 1, maxQueue: 2 },
    fastify: { logger: { level: 'debug' } }
  })
  const isQueued = (count: number) => (line: LogLine) => /request queued/.test(line.msg ?? '') && line.queued === count
  const first = request(app.port, '/slow?ms=1500')
  await app.waitForLog(requestFor('/slow?ms=1500'))
  const second = request(app.port, '/slow?ms=50&n=2')
  await app.waitForLog(isQueued(1))
  const third = request(app.port, '/slow?ms=50&n=3')
  await app.waitForLog(isQueued(2))
  const open = await openConnections(t, app.port, 2)

  app.kill('SIGTERM')
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.equal(started.activeRequests, 3, 'the drain counts the queued requests')
  await app.waitForLog(hasMessage(/stopped accepting connections/))
  t.equal(await failure(request(app.port, '/slow?ms=1')), 'ECONNREFUSED', 'a new connection is refused')
  const refused = await request(app.port, '/slow?ms=1', { agent: open })
  t.equal(refused.status, 503, 'a request on an open connection finds no free slot and may not queue')
  t.equal(refused.json().code, 'FST_GRACEFUL_SHUTTING_DOWN')
  t.equal(refused.headers.connection, 'close')
  const ready = await request(app.port, '/ready', { agent: open })
  t.same(ready.json(), { status: 'shutting_down', active_requests: 3, queued: 2 })

  const answers = await Promise.all([first, second, third])
  t.same(answers.map(answer => answer.status), [200, 200, 200], 'the queued requests are served, not cut')
  t.ok(answers[1]!.endedAt < answers[2]!.endedAt, 'in arrival order')
  const exit = await app.exited
  t.equal(exit.code, 0, 'exit 0: everything accepted was served')
})

t.test('maxQueue or queueTimeout that could never apply fail at register time', async t => {
  const cases: Array<[GracefulTerminationOptions, RegExp]> = [
    [{ maxQueue: 2 }, /option maxQueue must be 0 while maxConcurrency is unlimited .*received 2$/],
    [{ queueTimeout: 100 }, /option queueTimeout must be 0 while maxQueue is 0 .*received 100$/],
    [{ maxConcurrency: 4, queueTimeout: 100 }, /option queueTimeout must be 0 while maxQueue is 0 .*received 100$/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(gracefulTermination, { handleSignals: false, ...options }) },
      { code: 'FST_GRACEFUL_INVALID_OPTION', message }, JSON.stringify(options))
  }

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(gracefulTermination, { handleSignals: false, maxConcurrency: 4, maxQueue: 0, queueTimeout: 0 })
  t.equal(app.graceful.queued, 0, 'the defaults written out are fine')
})
