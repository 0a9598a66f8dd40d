// The reference service, deployed on Cerebrium by ../Dockerfile and ../cerebrium.toml.
// It uses the plugin as any user would: by package name, settings read from cerebrium.toml.
import websocket from '@fastify/websocket'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import gracefulTermination from 'fastify-graceful-termination'
import { cerebriumOptions } from 'fastify-graceful-termination/cerebrium'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'

interface PredictBody {
  input: string
  ms: number
}

const predictSchema = {
  body: {
    type: 'object',
    required: ['input'],
    properties: {
      input: { type: 'string', maxLength: 10_000 },
      // Kept well inside response_grace_period, so a drain can always finish what it admitted.
      ms: { type: 'integer', minimum: 0, maximum: 60_000, default: 1000 }
    }
  }
} as const

/** A stand-in for model inference: takes `ms`, then answers with the input reversed. */
async function predict (request: FastifyRequest<{ Body: PredictBody }>, reply: FastifyReply) {
  const { input, ms } = request.body
  // The work stops when the client hangs up: nobody is left to read the result. It does not
  // stop on app.graceful.signal: the drain exists to let admitted inferences finish.
  const clientGone = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) clientGone.abort() })
  await sleep(ms, undefined, { signal: clientGone.signal }).catch(() => {})
  if (clientGone.signal.aborted) {
    request.log.info({ ms }, 'client went away: inference stopped')
    return reply.hijack() // the connection is gone: Fastify must not try to send on it
  }
  return { output: [...input].reverse().join(''), ms }
}

const generateSchema = {
  body: {
    type: 'object',
    properties: {
      prompt: { type: 'string', maxLength: 10_000, default: '' },
      n: { type: 'integer', minimum: 1, maximum: 10_000, default: 20 },
      ms: { type: 'integer', minimum: 0, maximum: 10_000, default: 100 }
    }
  }
} as const

/**
 * Streamed generation over Server-Sent Events, as an LLM endpoint streams: `n` tokens, one every
 * `ms`, then a `done` event. The drain lets a generation finish; Fastify stops the generator when
 * the client hangs up.
 */
async function generate (request: FastifyRequest<{ Body: { prompt: string, n: number, ms: number } }>, reply: FastifyReply) {
  const { prompt, n, ms } = request.body
  const words = prompt.split(/\s+/).filter(Boolean)
  async function * events (): AsyncGenerator<string> {
    for (let index = 0; index < n; index++) {
      await sleep(ms)
      yield `data: ${JSON.stringify({ index, token: words[index % words.length] ?? `token-${index}` })}\n\n`
    }
    yield 'event: done\ndata: {}\n\n'
  }
  return reply.type('text/event-stream').header('cache-control', 'no-cache').send(Readable.from(events()))
}

const app = Fastify({
  logger: true,
  // A JSON API: "input": 5 is a client's mistake to report with a 400, not a string to guess.
  ajv: { customOptions: { coerceTypes: false } }
})

try {
  const cerebrium = cerebriumOptions({ log: app.log })
  const { maxConcurrency } = cerebrium.options
  // A load balancer briefly sends more than a replica's concurrency now and then: a queue as
  // deep as the limit lets that burst wait for a slot instead of answering 503.
  const options = maxConcurrency === undefined ? cerebrium.options : { ...cerebrium.options, maxQueue: maxConcurrency }
  app.log.info({ file: cerebrium.file, found: cerebrium.found, ...options, port: cerebrium.port }, 'settings')
  await app.register(gracefulTermination, options)
  await app.register(websocket)

  app.post('/hello', async () => ({ message: 'Hello Cerebrium!' }))
  app.post('/predict', { schema: predictSchema }, predict)
  app.post('/generate', { schema: generateSchema }, generate)
  // A realtime session: every message comes back at once. The drain lets it run; at its
  // deadline the client gets 1001 Going Away. It is outside replica_concurrency: an open session
  // sits idle between messages, and holding a slot for its whole life would starve inference.
  // /generate stays inside: a generation keeps the model busy until its last token.
  app.get('/realtime', { websocket: true, config: { graceful: { limit: false } } }, socket => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
  })

  // A stand-in for loading the model's weights: the app listens at once, so the platform's
  // liveness probe sees it alive, while readiness says 503 "starting" until the load is done.
  const rawModelLoadMs = process.env.MODEL_LOAD_MS ?? ''
  if (!/^\d*$/.test(rawModelLoadMs)) throw new Error(`MODEL_LOAD_MS must be a whole number of milliseconds, received ${JSON.stringify(rawModelLoadMs)}`)
  const modelLoadMs = Number(rawModelLoadMs)
  if (modelLoadMs > 0) {
    app.log.info({ modelLoadMs }, 'loading the model')
    app.graceful.startup(signal => sleep(modelLoadMs, undefined, { signal })).then(
      () => app.log.info({ modelLoadMs }, 'model loaded'),
      // A failed load is logged by the plugin, which then stops the replica with exit code 1.
      () => {})
  }

  await app.listen({ port: cerebrium.port ?? 8000, host: process.env.HOST || '0.0.0.0' })
} catch (err) {
  app.log.fatal({ err }, 'could not start')
  process.exitCode = 1
}
