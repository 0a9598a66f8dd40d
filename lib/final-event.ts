import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { RawResponse } from './connections.js'
import { DEFAULT_SSE_FINAL_EVENT, isSseEvent, type SseFinalEvent } from './options.js'

/**
 * What each event stream still open at the deadline is sent before it ends: the option itself,
 * or what its function makes of the stream's request (a token to resume from, say). A function
 * that throws or returns no event is logged, and its stream gets the default event: it still
 * ends with a reason.
 */
export function finalEventOf (option: SseFinalEvent, requestOf: (response: RawResponse) => FastifyRequest,
  log: FastifyBaseLogger): (response: RawResponse) => string | false {
  if (typeof option !== 'function') return () => option
  return response => {
    try {
      const request = requestOf(response)
      const event = option(request)
      if (event === false || isSseEvent(event)) return event
      log.error({ reqId: request.id, returned: event }, 'sseFinalEvent returned no event ending with a blank line: the default one is sent')
    } catch (err) {
      log.error({ err }, 'sseFinalEvent threw: the default final event is sent')
    }
    return DEFAULT_SSE_FINAL_EVENT
  }
}
