import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Connections, RawResponse } from './connections.js'
import { publishRefusal } from './diagnostics.js'
import type { ConcurrencyLimit, Place } from './limit.js'
import type { ResolvedOptions } from './options.js'
import { continueIfAwaited, QUEUE_FULL_BODY, QUEUE_TIMEOUT_BODY, refuse, SHUTTING_DOWN_BODY, STARTING_BODY, type Refusal } from './refusal.js'
import { servedWhileStarting, type RouteConfig } from './route-config.js'
import type { DrainTally, RequestEnding } from './tally.js'
import type { InFlight, InFlightTracker } from './tracker.js'

/**
 * Where a response keeps its count and its place in the limit until it ends; whether the plugin
 * refused it, and whether the drain has counted its end (both only set on the responses concerned).
 */
const kInFlight = Symbol('fastify-graceful-termination.inFlight')
const kPlace = Symbol('fastify-graceful-termination.place')
const kRefused = Symbol('fastify-graceful-termination.refused')
const kCounted = Symbol('fastify-graceful-termination.counted')
type AdmittedResponse = RawResponse & { [kInFlight]?: InFlight<FastifyReply>, [kPlace]?: Place, [kRefused]?: true, [kCounted]?: true }

export interface AdmissionOptions {
  options: Pick<ResolvedOptions, 'retryAfter' | 'queueTimeout'>
  tracker: InFlightTracker<FastifyReply>
  /** True while serving; once draining, a request may take a free slot but not queue. */
  serving (): boolean
  /** True while startup work is pending: only routes that opted in are served. */
  starting (): boolean
  /** undefined when maxConcurrency is unlimited: nothing to wait for, nothing to pay. */
  limit: ConcurrencyLimit | undefined
  log: FastifyBaseLogger
  isProbe (request: FastifyRequest): boolean
  /** Which routes are outside the limit. */
  routeConfig: Pick<RouteConfig, 'outOfLimit'>
  /** Calls end() when the request is over: its response or its connection closed. */
  connections: Pick<Connections, 'follow'>
  /** Told how each request that ends during the drain ended. */
  tally: Pick<DrainTally, 'counting' | 'ended'>
}

export interface Admission {
  /** The onRequest hook: counts the request, then lets it run, queue or be refused. */
  admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void
  /** Ends a request's count and gives back its slot; called once its response or connection closed. */
  end (response: RawResponse): void
  /** The request of a response in flight (one this hook counted: not a probe's). */
  requestOf (response: RawResponse): FastifyRequest
}

/** How a request that ends during the drain is counted. */
function endingOf (response: AdmittedResponse): RequestEnding {
  if (response[kRefused] === true) return 'refused'
  // A WebSocket's response is never written: its session ran until it closed.
  return response.writableFinished || (response as ServerResponse).req?.headers.upgrade?.toLowerCase() === 'websocket' ? 'served' : 'abandoned'
}

function proceed (reply: FastifyReply, done: HookHandlerDoneFunction): void {
  continueIfAwaited(reply.raw)
  done()
}

/**
 * Every request passes here first: probes go straight through; every other request is counted
 * until it ends, refused ones included (they may still be reading a body), and the limit lets it
 * run, wait or be refused. A queued request was accepted, so the drain serves it.
 */
export function createAdmission ({ options, tracker, serving, starting, limit, log, isProbe, routeConfig, connections, tally }: AdmissionOptions): Admission {
  /** Every 503 of the plugin: marked for the drain's count, published, sent. */
  function refuseWith (request: FastifyRequest, reply: FastifyReply, body: Refusal): void {
    (reply.raw as AdmittedResponse)[kRefused] = true
    publishRefusal(body.code, request)
    refuse(request, reply, body, options.retryAfter)
  }

  function admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (isProbe(request)) return proceed(reply, done)
    const response = reply.raw as AdmittedResponse
    response[kInFlight] = tracker.begin(reply)
    // Requests through a server are followed already; this catches inject() and routers called directly.
    connections.follow(request.raw, response)
    // Route config is read only while starting, and for the limit once a route is outside it:
    // building routeOptions costs on every request.
    if (starting() && !servedWhileStarting(request)) {
      log.debug({ reqId: request.id }, 'still starting: refused with 503')
      return refuseWith(request, reply, STARTING_BODY)
    }
    if (limit === undefined || routeConfig.outOfLimit(request)) return proceed(reply, done)

    const mayQueue = serving()
    const place = limit.enter(mayQueue)
    if (place === undefined) {
      log.debug({ reqId: request.id, running: limit.running, queued: limit.queued },
        mayQueue ? 'every slot busy and the queue full: refused with 503' : 'every slot busy while draining: refused with 503')
      return refuseWith(request, reply, mayQueue ? QUEUE_FULL_BODY : SHUTTING_DOWN_BODY)
    }
    response[kPlace] = place
    if (!place.waiting) return proceed(reply, done)
    log.debug({ reqId: request.id, running: limit.running, queued: limit.queued }, 'every slot busy: request queued')
    place.whenTurn(turn => {
      if (turn === 'run') return proceed(reply, done)
      log.debug({ reqId: request.id, queueTimeout: options.queueTimeout }, 'no slot within queueTimeout: refused with 503')
      refuseWith(request, reply, QUEUE_TIMEOUT_BODY)
    })
  }

  function end (response: AdmittedResponse): void {
    const inFlight = response[kInFlight]
    if (inFlight === undefined) return
    const place = response[kPlace]
    if (place !== undefined) {
      const leftTheQueue = place.waiting
      place.leave()
      if (leftTheQueue) log.debug({ reqId: inFlight.request.request.id, queued: limit!.queued }, 'client left while queued: its place is given back')
    }
    // A response can end twice (its connection closed first): the drain counts it once.
    if (tally.counting && response[kCounted] !== true) {
      response[kCounted] = true
      tally.ended(endingOf(response))
    }
    tracker.end(inFlight)
  }

  const requestOf = (response: AdmittedResponse): FastifyRequest => response[kInFlight]!.request.request

  return { admit, end, requestOf }
}
