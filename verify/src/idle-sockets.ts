import net from 'node:net'
import tls from 'node:tls'
import { connectHttp2 } from './client.js'
import type { Target } from './target.js'

export interface IdleSocketCounts {
  opened: number
  /** Closed before the signal: the service's keep-alive timeout, or it answered Connection: close. */
  closedBeforeSignal: number
  /** Closed by the service after the signal, while it still ran: a proxy sees an orderly close. */
  closedByService: number
  /** Still open when the process died (the kernel closed them), or still open at the end. */
  openAtExit: number
}

interface Watched { close: () => void, closedAt: number | undefined, serviceAlive: boolean }

/** Whether `received` holds a whole HTTP/1.1 response (framed by content-length or chunked). */
export function complete (received: string): boolean {
  const headEnd = received.indexOf('\r\n\r\n')
  if (headEnd === -1) return false
  const head = received.slice(0, headEnd).toLowerCase()
  const length = /\r\ncontent-length:\s*(\d+)/.exec(head)?.[1]
  if (length !== undefined) return Buffer.byteLength(received.slice(headEnd + 4)) >= Number(length)
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) return received.endsWith('\r\n0\r\n\r\n')
  // Unframed: the body ends when the service closes the connection, so it is not kept alive.
  return false
}

/**
 * Keep-alive connections that carried one request and then sit idle, as a proxy's pool holds
 * them: a service that drains well closes them itself before it exits. Plain (or TLS) sockets,
 * always reading, so a close is seen as soon as it arrives, while the kernel can still tell
 * whether the service was alive to send it. Over HTTP/2, sessions, closed by a GOAWAY.
 */
export class IdleSockets {
  readonly #watched: Watched[] = []
  /** Whether the service was alive when the first close of this turn of the event loop was read. */
  #aliveThisTurn: boolean | undefined

  /** Opens `count` connections, each with one GET of `path`; `alive` tells whether the service still runs. */
  static async open (target: Target, path: string, count: number, alive: () => boolean): Promise<IdleSockets> {
    const idle = new IdleSockets()
    await Promise.all(Array.from({ length: count }, () => idle.#openOne(target, path, alive)))
    return idle
  }

  /** Records the first close of a connection, and whether the service was alive to send it. */
  #watch (close: () => void, alive: () => boolean): () => void {
    const watched: Watched = { close, closedAt: undefined, serviceAlive: true }
    this.#watched.push(watched)
    return () => {
      if (watched.closedAt !== undefined) return
      watched.closedAt = performance.now()
      // Closes read in one turn had all arrived before the first of them was read: if the service
      // was alive then, it sent every one of them. Asked again for each socket, a close read a
      // moment after the service exited would count as the kernel's.
      if (this.#aliveThisTurn === undefined) {
        this.#aliveThisTurn = alive()
        setImmediate(() => { this.#aliveThisTurn = undefined })
      }
      watched.serviceAlive = this.#aliveThisTurn
    }
  }

  #openOne (target: Target, path: string, alive: () => boolean): Promise<void> {
    return target.http2 ? this.#openSession(target, path, alive) : this.#openSocket(target, path, alive)
  }

  #openSocket ({ host, port, tls: secure, insecure }: Target, path: string, alive: () => boolean): Promise<void> {
    const socket = secure ? tls.connect({ host, port, servername: net.isIP(host) === 0 ? host : undefined, rejectUnauthorized: !insecure }) : net.connect({ host, port })
    const closed = this.#watch(() => socket.destroy(), alive)
    // 'end' is the service's FIN, 'error' its reset; 'close' alone, a close on this side.
    socket.once('end', closed).once('error', closed).once('close', closed)
    return new Promise(resolve => {
      let received = ''
      const timer = setTimeout(resolve, 5000)
      socket.setEncoding('utf8').on('data', (chunk: string) => {
        received += chunk
        if (complete(received)) { clearTimeout(timer); resolve() }
      })
      socket.once('close', () => { clearTimeout(timer); resolve() })
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: keep-alive\r\n\r\n`)
    })
  }

  #openSession (target: Target, path: string, alive: () => boolean): Promise<void> {
    const session = connectHttp2(target)
    const closed = this.#watch(() => session.destroy(), alive)
    // A GOAWAY is the service's word that it takes no new stream: the orderly close of HTTP/2.
    session.once('goaway', closed).once('close', closed).on('error', closed)
    return new Promise(resolve => {
      const timer = setTimeout(resolve, 5000)
      const stream = session.request({ ':method': 'GET', ':path': path })
      stream.on('error', () => {})
      stream.once('close', () => { clearTimeout(timer); resolve() })
      stream.resume()
    })
  }

  counts (signalAt: number): IdleSocketCounts {
    const counts = { opened: this.#watched.length, closedBeforeSignal: 0, closedByService: 0, openAtExit: 0 }
    for (const { closedAt, serviceAlive } of this.#watched) {
      if (closedAt !== undefined && closedAt < signalAt) counts.closedBeforeSignal++
      else if (closedAt !== undefined && serviceAlive) counts.closedByService++
      else counts.openAtExit++
    }
    return counts
  }

  close (): void {
    for (const { close } of this.#watched) close()
  }
}
