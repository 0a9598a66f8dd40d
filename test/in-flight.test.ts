// The in-flight count must come back to zero whatever happens to a request, over real TCP.
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import gracefulTermination from '../lib/index.js'
import type { Teardown } from './helpers/app-process.js'
import { request } from './helpers/http.js'

interface NextRequest {
  /** activeRequests just after the plugin's onRequest hook has seen the request. */
  admitted: Promise<number>
  /** The server-side response has closed (its 'close' listener runs after the plugin's). */
  closed: Promise<void>
}

interface Harness {
  app: FastifyInstance
  port: number
  /** Hooks onto the next request that reaches the server; call it before sending. */
  nextRequest (): NextRequest
}

async function harness (t: Teardown, fastifyOptions: FastifyServerOptions = {}, serverFactory?: FastifyServerOptions['serverFactory']): Promise<Harness> {
  const app = Fastify({ ...fastifyOptions, ...(serverFactory ? { serverFactory } : {}) })
  await app.register(gracefulTermination, { handleSignals: false })
  const waiting: Array<{ admitted: (active: number) => void, closed: () => void }> = []
  // Added after the plugin's hook: it runs second, and so does its 'close' listener.
  app.addHook('onRequest', async (_request, reply) => {
    const next = waiting.shift()
    if (next === undefined) return
    reply.raw.once('close', next.closed)
    next.admitted(app.graceful.activeRequests)
  })

  app.get('/ok', async () => ({ ok: true }))
  app.get('/throw', async () => { throw new Error('handler failed') })
  // Ends with the instance, so the test's teardown is not held by its timer.
  app.get('/slow', async () => { await sleep(10_000, null, { signal: app.graceful.signal }); return { late: true } })
  app.post('/upload', { bodyLimit: 64 }, async (req) => req.body)
  app.get('/stream', async (_request, reply) => {
    async function * chunks (): AsyncGenerator<string> {
      for (let i = 0; i < 3; i++) { await sleep(5); yield `chunk ${i}\n` }
    }
    return reply.type('text/plain').send(Readable.from(chunks()))
  })
  app.get('/endless-stream', async (_request, reply) => {
    async function * forever (): AsyncGenerator<string> {
      for (;;) { await sleep(5); yield 'more\n' }
    }
    return reply.type('text/plain').send(Readable.from(forever()))
  })
  app.get('/hijack', async (_request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    await sleep(5)
    reply.raw.end('hijacked')
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as net.AddressInfo).port
  return {
    app,
    port,
    nextRequest () {
      let admitted!: (active: number) => void
      let closed!: () => void
      const next = {
        admitted: new Promise<number>(resolve => { admitted = resolve }),
        closed: new Promise<void>(resolve => { closed = resolve })
      }
      waiting.push({ admitted, closed })
      return next
    }
  }
}

t.test('each way a request can end brings the count back to zero', async t => {
  const cases: Array<[string, (h: Harness) => Promise<unknown>]> = [
    ['a finished request', h => request(h.port, '/ok')],
    ['a thrown error (500)', async h => t.equal((await request(h.port, '/throw')).status, 500)],
    ['a 404', async h => t.equal((await request(h.port, '/missing')).status, 404)],
    ['an oversized body (413)', async h => t.equal((await request(h.port, '/upload', {
      method: 'POST', body: JSON.stringify({ padding: 'x'.repeat(200) }), headers: { 'content-type': 'application/json' }
    })).status, 413)],
    ['a streamed response', async h => t.equal((await request(h.port, '/stream')).text, 'chunk 0\nchunk 1\nchunk 2\n')],
    ['a hijacked reply', async h => t.equal((await request(h.port, '/hijack')).text, 'hijacked')]
  ]
  const h = await harness(t)
  for (const [name, run] of cases) {
    const next = h.nextRequest()
    await run(h)
    await next.closed
    t.equal(await next.admitted, 1, `${name}: counted while in flight`)
    t.equal(h.app.graceful.activeRequests, 0, `${name}: back to zero`)
  }
})

t.test('a client that hangs up before the response', async t => {
  const h = await harness(t)
  const next = h.nextRequest()
  const req = http.get({ host: '127.0.0.1', port: h.port, path: '/slow', agent: false })
  req.on('error', () => {})
  t.equal(await next.admitted, 1)
  req.destroy()
  await next.closed
  t.equal(h.app.graceful.activeRequests, 0, 'onResponse never fires here; the count still ends')
})

t.test('a client that hangs up in the middle of a streamed response', async t => {
  const h = await harness(t)
  const next = h.nextRequest()
  const req = http.get({ host: '127.0.0.1', port: h.port, path: '/endless-stream', agent: false })
  req.on('error', () => {})
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  await once(res, 'data')
  t.equal(h.app.graceful.activeRequests, 1)
  req.destroy()
  await next.closed
  t.equal(h.app.graceful.activeRequests, 0)
})

t.test('a request timeout (408 from Node) while the body is still coming', async t => {
  const h = await harness(t, {}, (handler) => http.createServer({
    requestTimeout: 300,
    connectionsCheckingInterval: 50
  }, handler))
  const next = h.nextRequest()
  const socket = net.connect(h.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  // Headers complete, body promised but never sent: the request is in flight until Node gives up.
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"a":')
  const answer = once(socket, 'data').then(([chunk]) => String(chunk))
  t.equal(await next.admitted, 1, 'counted while the body is awaited')
  await next.closed
  t.match(await answer, /^HTTP\/1\.1 408/)
  t.equal(h.app.graceful.activeRequests, 0)
})

t.test('a connection timeout (Fastify connectionTimeout) on a stalled upload', async t => {
  const h = await harness(t, { connectionTimeout: 200 })
  const next = h.nextRequest()
  const socket = net.connect(h.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  const socketClosed = once(socket, 'close')
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"a":')
  t.equal(await next.admitted, 1, 'counted while the body is awaited')
  await next.closed
  t.equal(h.app.graceful.activeRequests, 0)
  await socketClosed
})

t.test('probes are not counted', async t => {
  const h = await harness(t)
  const next = h.nextRequest()
  const ready = await request(h.port, '/ready')
  t.same(ready.json(), { status: 'ready', active_requests: 0, queued: 0 }, 'the readiness request does not count itself')
  t.equal(await next.admitted, 0, 'the probe passed the plugin\'s hook uncounted')
  await next.closed
  t.equal(h.app.graceful.activeRequests, 0)
})
