import { once } from 'node:events'
import type { EventEmitter } from 'node:events'

/** A WebSocket as the `ws` library has it; @fastify/websocket's are. */
export interface WebSocketLike extends EventEmitter {
  readonly readyState: number
  close (code: number, reason: string): void
}

/** `ws`'s WebSocketServer, as @fastify/websocket decorates it on the app: `websocketServer`. */
export interface WebSocketServerLike {
  clients: Iterable<WebSocketLike>
}

const OPEN = 1
/** RFC 6455: "an endpoint is going away, such as a server going down". */
export const GOING_AWAY = 1001
export const GOING_AWAY_REASON = 'server shutting down'

/**
 * Sends every open WebSocket a 1001 Going Away close frame, through `ws` itself so the closing
 * handshake is done right. Returns one promise per socket, settled once it has closed.
 */
export function closeWebSockets (server: WebSocketServerLike | undefined): Array<Promise<unknown>> {
  if (server?.clients === undefined) return []
  const closing: Array<Promise<unknown>> = []
  for (const socket of server.clients) {
    if (socket.readyState !== OPEN) continue
    closing.push(once(socket, 'close'))
    socket.close(GOING_AWAY, GOING_AWAY_REASON)
  }
  return closing
}
