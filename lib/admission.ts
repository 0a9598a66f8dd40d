import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ConcurrencyLimit } from './limit.js'
import type { ResolvedOptions } from './options.js'
import type { ShutdownSequence } from './shutdown.js'
import type { InFlight, InFlightTracker } from './tracker.js'

function serviceUnavailable<Code extends string> (code: Code, message: string) {
  return { statusCode: 503, error: 'Service Unavailable', code, message } as const
}

export const SHUTTING_DOWN_BODY = serviceUnavailable('FST_GRACEFUL_SHUTTING_DOWN',
  'This instance is shutting down; retry the request on another one.')
export const QUEUE_FULL_BODY = serviceUnavailable('FST_GRACEFUL_QUEUE_FULL',
  'Every slot is busy and the queue is full; retry the request later.')
export const QUEUE_TIMEOUT_BODY = serviceUnavailable('FST_GRACEFUL_QUEUE_TIMEOUT',
  'No slot freed up within queueTimeout; retry the request later.')

type Refusal = typeof SHUTTING_DOWN_BODY | typeof QUEUE_FULL_BODY | typeof QUEUE_TIMEOUT_BODY

/** Where a response keeps its place in the tracker, for the one listener all responses share. */
const kInFlight = Symbol('fastify-graceful-termination.inFlight')
type TrackedResponse = FastifyReply['raw'] & { [kInFlight]?: InFlight<FastifyReply> }

export interface AdmissionParts {
  options: Pick<ResolvedOptions, 'retryAfter' | 'queueTimeout'>
  tracker: InFlightTracker<FastifyReply>
  sequence: ShutdownSequence
  /** undefined when maxConcurrency is unlimited: nothing to wait for, nothing to pay. */
  limit: ConcurrencyLimit | undefined
  log: FastifyBaseLogger
  isProbe (request: FastifyRequest): boolean
}

/**
 * Every request passes here first: probes go straight through, new requests are refused once
 * the shutdown refuses them, the limit lets the rest run, wait or be refused, and every request
 * let in is counted until its response closes. A queued request counts too: it was accepted,
 * so the drain serves it.
 *
 * The count, the slot and the place in the queue end on the response's 'close' event, not in
 * onResponse: 'close' fires once for every response, finished or not (a client that hangs up, a
 * socket timeout, a hijacked reply), while onResponse never fires for a client that went away
 * first, and the count would leak.
 */
export function installAdmission (fastify: FastifyInstance, { options, tracker, sequence, limit, log, isProbe }: AdmissionParts): void {
  // One function for every response, not a closure each: `this` is the response that closed.
  function endOnClose (this: TrackedResponse): void {
    tracker.end(this[kInFlight]!)
  }

  function refuse (reply: FastifyReply, body: Refusal): void {
    reply.code(503).header('retry-after', options.retryAfter)
    if (body === SHUTTING_DOWN_BODY) reply.header('connection', 'close')
    reply.send(body)
  }

  fastify.addHook('onRequest', function admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const response = reply.raw
    // Node then answers with Connection: close and ends the socket after this response.
    if (sequence.state !== 'serving') response.shouldKeepAlive = false
    if (isProbe(request)) return done()
    if (sequence.refusingNewRequests) return refuse(reply, SHUTTING_DOWN_BODY)

    if (limit === undefined) {
      (response as TrackedResponse)[kInFlight] = tracker.begin(reply)
      // 'close' fires once per response: on() spares the wrapper that once() would build.
      response.on('close', endOnClose)
      return done()
    }

    // Once draining, a request may take a free slot but no longer queue.
    const serving = sequence.state === 'serving'
    const admission = limit.enter(turn => {
      if (turn === 'run') return done()
      log.debug({ reqId: request.id, queueTimeout: options.queueTimeout }, 'no slot within queueTimeout: refused with 503')
      refuse(reply, QUEUE_TIMEOUT_BODY)
    }, serving)
    if (admission === undefined) {
      log.debug({ reqId: request.id, running: limit.running, queued: limit.queued },
        serving ? 'every slot busy and the queue full: refused with 503' : 'every slot busy while draining: refused with 503')
      return refuse(reply, serving ? QUEUE_FULL_BODY : SHUTTING_DOWN_BODY)
    }

    const inFlight = tracker.begin(reply)
    response.on('close', () => {
      const leftTheQueue = admission.waiting
      admission.leave()
      tracker.end(inFlight)
      if (leftTheQueue) log.debug({ reqId: request.id, queued: limit.queued }, 'client left while queued: its place is given back')
    })
    if (admission.waiting) {
      log.debug({ reqId: request.id, running: limit.running, queued: limit.queued }, 'every slot busy: request queued')
    } else {
      done()
    }
  })
}
