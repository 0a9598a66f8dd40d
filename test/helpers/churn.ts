// Clients that keep a replica busy through its shutdown, over raw sockets so that every request's
// fate is known: answered, refused before anything was sent, reset after it was sent, or closed
// with a FIN and no answer (the keep-alive race).
import net from 'node:net'
import type { Teardown } from './app-process.js'

export interface ChurnOptions {
  port: number
  /** Clients that open a new connection for each request (Connection: close). */
  perRequest: number
  /** Clients that keep one connection for as long as the server does. */
  keepAlive: number
  /** What each request asks for. */
  path: string
}

export interface ChurnOutcome {
  /** Answers, by status code. */
  statuses: Record<string, number>
  /** Connections refused: nothing was sent, any client or proxy may retry elsewhere. */
  refused: number
  /** Requests written, then reset before their answer: the client cannot tell whether they ran. */
  resetAfterSent: number
  /** Requests written, then their connection closed with a FIN and no answer. */
  closedUnanswered: number
}

export interface Churn {
  outcome: ChurnOutcome
  /** Resolves once the clients have had `count` answers between them. */
  answered (count: number): Promise<void>
  /** Resolves once every client has stopped: each stops when a connection is refused. */
  finished: Promise<ChurnOutcome>
}

type Exchange = { status: number, closes: boolean } | 'refused' | 'reset' | 'closed'

/** One request on a socket, `connecting` or open; how it ended. */
function exchange (socket: net.Socket, request: string, connecting: boolean): Promise<Exchange> {
  return new Promise(resolve => {
    let received = ''
    const done = (result: Exchange): void => {
      socket.removeListener('data', onData)
      socket.removeListener('close', onClose)
      socket.removeListener('error', onError)
      resolve(result)
    }
    const onData = (chunk: string): void => {
      received += chunk
      const headEnd = received.indexOf('\r\n\r\n')
      if (headEnd === -1) return
      const head = received.slice(0, headEnd).toLowerCase()
      const length = Number(/\r\ncontent-length: *(\d+)/.exec(head)?.[1] ?? 0)
      if (received.length < headEnd + 4 + length) return
      done({ status: Number(head.split(' ')[1]), closes: head.includes('\r\nconnection: close') })
    }
    let error: string | undefined
    const onError = (err: NodeJS.ErrnoException): void => { error ??= err.code ?? err.message }
    const onClose = (): void => {
      if (connecting && error === 'ECONNREFUSED') done('refused')
      else done(error === undefined ? 'closed' : 'reset')
    }
    socket.setEncoding('latin1')
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.write(request)
  })
}

/** Starts the clients; each runs until a connection of its is refused. Teardown destroys their sockets. */
export function startChurn (t: Teardown, { port, perRequest, keepAlive, path }: ChurnOptions): Churn {
  const outcome: ChurnOutcome = { statuses: {}, refused: 0, resetAfterSent: 0, closedUnanswered: 0 }
  const sockets = new Set<net.Socket>()
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  let answers = 0
  const waiting: Array<{ count: number, resolve (): void }> = []

  function open (): net.Socket {
    const socket = net.connect(port, '127.0.0.1')
    sockets.add(socket)
    // An error after the exchange that it ends (a reset after the answer) changes nothing here.
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    return socket
  }
  /** Counts an exchange; true if the client goes on. */
  function count (result: Exchange): boolean {
    if (result === 'refused') outcome.refused++
    else if (result === 'reset') outcome.resetAfterSent++
    else if (result === 'closed') outcome.closedUnanswered++
    else {
      outcome.statuses[result.status] = (outcome.statuses[result.status] ?? 0) + 1
      answers++
      for (const waiter of waiting.filter(waiter => waiter.count <= answers)) {
        waiting.splice(waiting.indexOf(waiter), 1)
        waiter.resolve()
      }
    }
    return result !== 'refused'
  }

  async function perRequestClient (): Promise<void> {
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`
    for (;;) {
      const socket = open()
      // Written as soon as the socket connects, as a client does: the request may sit in the
      // server's accept queue.
      const result = await exchange(socket, request, true)
      socket.destroy()
      if (!count(result)) return
    }
  }

  async function keepAliveClient (): Promise<void> {
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`
    for (;;) {
      const socket = open()
      let first = true
      for (;;) {
        const result = await exchange(socket, request, first)
        first = false
        if (!count(result)) return
        if (typeof result === 'string' || result.closes) break
      }
      socket.destroy()
    }
  }

  const clients = [
    ...Array.from({ length: perRequest }, perRequestClient),
    ...Array.from({ length: keepAlive }, keepAliveClient)
  ]
  return {
    outcome,
    answered: count => answers >= count ? Promise.resolve() : new Promise(resolve => { waiting.push({ count, resolve }) }),
    finished: Promise.all(clients).then(() => outcome)
  }
}
