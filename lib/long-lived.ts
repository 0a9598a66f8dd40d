import { once } from 'node:events'
import type { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'

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

export interface LongLivedOptions {
  /** The HTTP/1 responses in flight, on every connection. */
  responses (): Iterable<ServerResponse>
  /** What an event stream still open at the deadline is sent before it ends; false for nothing. */
  finalEvent (response: ServerResponse): string | false
  /** The app's WebSocket server (@fastify/websocket's `websocketServer`), looked up when needed. */
  webSocketServer (): WebSocketServerLike | undefined
}

/**
 * What stays open for as long as its client likes, ended the way its protocol allows when the
 * drain cannot wait for it any more: event streams get a final event and their end, WebSockets
 * a 1001 Going Away close frame.
 */
export class LongLived {
  readonly #options: LongLivedOptions

  constructor (options: LongLivedOptions) {
    this.#options = options
  }

  /** Ends every Server-Sent Events stream in flight: its final event, then its end. Returns how many. */
  endEventStreams (): number {
    let ended = 0
    for (const response of this.#options.responses()) {
      if (!response.headersSent || response.writableEnded) continue
      if (!String(response.getHeader('content-type') ?? '').startsWith('text/event-stream')) continue
      // Whatever still streams into it now writes after its end: that error is expected.
      response.on('error', () => {})
      const finalEvent = this.#options.finalEvent(response)
      if (finalEvent === false) response.end()
      else response.end(finalEvent)
      ended++
    }
    return ended
  }

  /** Sends every open WebSocket 1001 Going Away; one promise per socket, settled once it closed. */
  closeWebSockets (): Array<Promise<unknown>> {
    return closeWebSockets(this.#options.webSocketServer())
  }
}
