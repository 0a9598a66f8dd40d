import http from 'node:http'
import type { Socket } from 'node:net'
import type { Target } from './readiness.js'

export interface IdleSocketCounts {
  opened: number
  /** Closed before the signal: the service's keep-alive timeout, or it answered Connection: close. */
  closedBeforeSignal: number
  /** Closed by the service after the signal, while it still ran: a proxy sees an orderly close. */
  closedByService: number
  /** Still open when the process died (the kernel closed them), or still open at the end. */
  openAtExit: number
}

interface Watched { closedAt: number | undefined, serviceAlive: boolean }

/**
 * Keep-alive connections that carried one request and then sit idle, as a proxy's pool holds
 * them: a service that drains well closes them itself before it exits.
 */
export class IdleSockets {
  readonly #watched: Watched[] = []
  readonly #agent: http.Agent

  private constructor (agent: http.Agent) {
    this.#agent = agent
  }

  /** Opens `count` connections, each with one GET of `path`; `alive` tells whether the service still runs. */
  static async open (target: Target, path: string, count: number, alive: () => boolean): Promise<IdleSockets> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: count })
    const idle = new IdleSockets(agent)
    await Promise.all(Array.from({ length: count }, () => new Promise<void>(resolve => {
      const request = http.get({ ...target, path, agent, timeout: 5000 }, response => {
        response.resume().once('end', resolve).once('error', () => resolve())
      })
      request.once('socket', socket => idle.#watch(socket, alive))
      request.once('timeout', () => request.destroy())
      request.once('error', () => resolve())
    })))
    return idle
  }

  #watch (socket: Socket, alive: () => boolean): void {
    const watched: Watched = { closedAt: undefined, serviceAlive: true }
    this.#watched.push(watched)
    const closed = (): void => {
      if (watched.closedAt !== undefined) return
      watched.closedAt = performance.now()
      watched.serviceAlive = alive()
    }
    // 'end' is the service's FIN, 'error' its reset; 'close' alone, a close on this side.
    socket.once('end', closed).once('error', closed).once('close', closed)
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
    this.#agent.destroy()
  }
}
