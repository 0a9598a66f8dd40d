import diagnosticsChannel from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import type { RefusalCode } from './refusal.js'
import type { ShutdownOutcome } from './shutdown.js'
import type { DrainCounts } from './tally.js'

/** Where each phase of the shutdown is published: a ShutdownMessage. */
export const SHUTDOWN_CHANNEL = 'fastify-graceful-termination.shutdown'
/** Where each 503 the plugin decides to send is published: a RefusedMessage. */
export const REFUSED_CHANNEL = 'fastify-graceful-termination.refused'

/** The phases of a shutdown, published in this order: 'drained' or 'deadline', never both. */
export type ShutdownPhase = 'started' | 'stopped-accepting' | 'drained' | 'deadline' | 'closed'

/** What every phase says. */
export interface PhaseFigures<Phase extends ShutdownPhase = ShutdownPhase> {
  phase: Phase
  /** What started the shutdown: a signal's name, 'uncaught error', or the reason given to shutdown(). */
  reason: string
  /** Since the shutdown started. */
  elapsedMs: number
  /** Requests in flight now, queued ones included, probes never. */
  activeRequests: number
  /** track()ed work not settled yet. */
  pendingTasks: number
}

/**
 * A message on SHUTDOWN_CHANNEL; its phase tells which:
 * - 'started': the signal came, readiness answers 503; `deadline` is fastify.graceful.deadline.
 * - 'stopped-accepting': the listeners are closed, after readinessDelay (or at the deadline, if it came first).
 * - 'drained': nothing is in flight any more; 'deadline': the deadline cut what was. The counts are final.
 * - 'closed': fastify.close() finished, failed or ran out of time; the outcome shutdown() resolves with.
 */
export type ShutdownMessage =
  | PhaseFigures<'started'> & { deadline: number }
  | PhaseFigures<'stopped-accepting'> & { acceptedWhileClosing: number }
  | PhaseFigures<'drained' | 'deadline'> & DrainCounts
  | PhaseFigures<'closed'> & ShutdownOutcome

/** A message on REFUSED_CHANNEL. */
export interface RefusedMessage {
  /** The code in the 503's body: why it was refused. */
  code: RefusalCode
  /** The request refused; its 503 follows (once its body is read). */
  request: FastifyRequest
}

// Made once: a channel without subscribers costs a property read per publication, nothing more.
const shutdownChannel = diagnosticsChannel.channel(SHUTDOWN_CHANNEL)
const refusedChannel = diagnosticsChannel.channel(REFUSED_CHANNEL)

/** Publishes a phase of the shutdown; the message is built only when someone listens. */
export function publishShutdownPhase (message: () => ShutdownMessage): void {
  if (shutdownChannel.hasSubscribers) shutdownChannel.publish(message())
}

/** Publishes a refusal; no object is made when no one listens. */
export function publishRefusal (code: RefusalCode, request: FastifyRequest): void {
  if (refusedChannel.hasSubscribers) refusedChannel.publish({ code, request } satisfies RefusedMessage)
}
