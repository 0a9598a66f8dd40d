import type { FastifyReply } from 'fastify'

/** The socket controls of node:http servers; an HTTP/2 server has sessions instead, and neither. */
interface SocketControls {
  closeIdleConnections?: () => void
  closeAllConnections?: () => void
}

/**
 * At drain start: responses not yet begun will say Connection: close and end their socket,
 * and keep-alive sockets with no request on them close now, so no client holds one open.
 */
export function releaseConnections (server: SocketControls, inFlight: Iterable<FastifyReply>): void {
  for (const { raw } of inFlight) {
    if (!raw.headersSent) raw.shouldKeepAlive = false
  }
  server.closeIdleConnections?.()
}

/** At the drain deadline: destroy every socket, in flight or not. */
export function cutConnections (server: SocketControls): void {
  server.closeAllConnections?.()
}
