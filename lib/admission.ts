import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { ResolvedOptions } from './options.js'
import { isProbeRoute } from './routes.js'
import type { ShutdownSequence } from './shutdown.js'
import type { InFlightTracker } from './tracker.js'

export const SHUTTING_DOWN_BODY = {
  statusCode: 503,
  error: 'Service Unavailable',
  code: 'FST_GRACEFUL_SHUTTING_DOWN',
  message: 'This instance is shutting down; retry the request on another one.'
} as const

/**
 * Every request passes here first: probes go straight through, new requests are refused once
 * the shutdown refuses them, and the rest are counted until their response closes.
 *
 * The count ends on the response's 'close' event, not in onResponse: 'close' fires for every
 * response, finished or not (a client that hangs up, a socket timeout, a hijacked reply), while
 * onResponse never fires for a client that went away first, and the count would leak.
 */
export function installAdmission (
  fastify: FastifyInstance,
  options: Pick<ResolvedOptions, 'retryAfter'>,
  tracker: InFlightTracker<ServerResponse>,
  sequence: ShutdownSequence
): void {
  fastify.addHook('onRequest', function admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const response = reply.raw
    // Node then answers with Connection: close and ends the socket after this response.
    if (sequence.state !== 'serving') response.shouldKeepAlive = false
    if (isProbeRoute(request.routeOptions.config)) return done()

    if (sequence.refusingNewRequests) {
      reply.code(503)
        .header('retry-after', options.retryAfter)
        .header('connection', 'close')
        .send(SHUTTING_DOWN_BODY)
      return
    }

    tracker.begin(response, { method: request.method, url: request.url, id: request.id })
    response.once('close', () => tracker.end(response))
    done()
  })
}
