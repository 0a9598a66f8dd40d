import type { FastifyReply, FastifyRequest } from 'fastify'
import type { EventEmitter } from 'node:events'
import type { Server } from 'node:net'
import type { RawRequest, RawResponse } from './connections.js'

const kAwaitingContinue = Symbol('fastify-graceful-termination.awaitingContinue')
type MayAwaitContinue = RawResponse & { [kAwaitingContinue]?: boolean }

/**
 * Without a 'checkContinue' listener Node sends 100 Continue before the app sees the request: a
 * request about to be refused would be invited to upload its body for nothing. So the server
 * holds it back, and continueIfAwaited() sends it once the request is let in. A server whose app
 * listens for 'checkContinue' itself is left to it.
 */
export function holdBackContinue (server: Server): void {
  const events = server as EventEmitter
  if (events.listenerCount('checkContinue') > 0) return
  events.on('checkContinue', (request: RawRequest, response: MayAwaitContinue) => {
    response[kAwaitingContinue] = true
    events.emit('request', request, response)
  })
}

/** Sends the 100 Continue that was held back for this response, if it was: the request is let in. */
export function continueIfAwaited (response: MayAwaitContinue): void {
  if (response[kAwaitingContinue] !== true) return
  response[kAwaitingContinue] = false
  response.writeContinue()
}

/** Whether a 100 Continue is held back for this response: its client sends no body until then. */
function awaitsContinue (response: MayAwaitContinue): boolean {
  return response[kAwaitingContinue] === true
}

function serviceUnavailable<Code extends string> (code: Code, message: string) {
  return { statusCode: 503, error: 'Service Unavailable', code, message } as const
}

export const SHUTTING_DOWN_BODY = serviceUnavailable('FST_GRACEFUL_SHUTTING_DOWN',
  'This instance is shutting down; retry the request on another one.')
export const QUEUE_FULL_BODY = serviceUnavailable('FST_GRACEFUL_QUEUE_FULL',
  'Every slot is busy and the queue is full; retry the request later.')
export const QUEUE_TIMEOUT_BODY = serviceUnavailable('FST_GRACEFUL_QUEUE_TIMEOUT',
  'No slot freed up within queueTimeout; retry the request later.')

export const STARTING_BODY = serviceUnavailable('FST_GRACEFUL_STARTING',
  'This instance is still starting; retry the request on another one, or later.')

export type Refusal = typeof SHUTTING_DOWN_BODY | typeof QUEUE_FULL_BODY | typeof QUEUE_TIMEOUT_BODY | typeof STARTING_BODY

/**
 * Why the plugin sent a 503: FST_GRACEFUL_STARTING (startup work pending), FST_GRACEFUL_QUEUE_FULL
 * (every slot busy, the queue full), FST_GRACEFUL_QUEUE_TIMEOUT (no slot within queueTimeout),
 * FST_GRACEFUL_SHUTTING_DOWN (no free slot while draining).
 */
export type RefusalCode = Refusal['code']

/**
 * How much of a refused request's body is read and thrown away before the 503, as nginx's
 * lingering close does. A socket closed while the client still sends reaches it as a reset
 * (EPIPE, ECONNRESET) instead of the 503; past these bounds that risk is taken.
 */
export const REFUSED_BODY_LIMIT = { bytes: 16 * 1024 * 1024, ms: 5000 }

/** An HTTP/1 body still on its way: an HTTP/2 stream can be answered and reset without harm. */
function bodyStillComing (request: FastifyRequest, reply: FastifyReply): boolean {
  const raw = request.raw
  if (raw.httpVersionMajor === 2 || raw.complete || awaitsContinue(reply.raw)) return false
  const length = raw.headers['content-length']
  if (length !== undefined) return length !== '0' && Number(length) <= REFUSED_BODY_LIMIT.bytes
  return raw.headers['transfer-encoding'] !== undefined
}

/** Answers 503 with Retry-After and a JSON body with a code, once the request's body is read. */
export function refuse (request: FastifyRequest, reply: FastifyReply, body: Refusal, retryAfter: number): void {
  reply.code(503).header('retry-after', retryAfter)
  if (!bodyStillComing(request, reply)) {
    reply.send(body)
    return
  }
  const raw = request.raw
  let received = 0
  const answer = (): void => {
    clearTimeout(timer)
    raw.off('data', count).off('end', answer).off('close', answer).off('error', answer)
    if (!reply.sent) reply.send(body)
  }
  const count = (chunk: Buffer): void => {
    received += chunk.length
    if (received > REFUSED_BODY_LIMIT.bytes) answer()
  }
  const timer = setTimeout(answer, REFUSED_BODY_LIMIT.ms)
  raw.on('data', count).once('end', answer).once('close', answer).once('error', answer)
  raw.resume()
}
