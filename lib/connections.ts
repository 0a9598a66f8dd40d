import net from 'node:net'
import { performance } from 'node:perf_hooks'
import type { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse, Http2Session } from 'node:http2'
import { acceptQueueLength } from './accept-queue.js'

export type RawRequest = IncomingMessage | Http2ServerRequest
export type RawResponse = ServerResponse | Http2ServerResponse

const kConnection = Symbol('fastify-graceful-termination.connection')
/**
 * How long the listeners may wait for a turn of the event loop that accepts nothing. Connections
 * still arriving in every turn after that are a flood no draining of the queue keeps up with.
 */
const LISTENER_CLOSE_LIMIT_MS = 1000
/** The fewest closed connections worth a sweep of the registry (see #sweep). */
const SWEEP_MIN = 64

type Tagged<T> = T & { [kConnection]?: Connection }
/** A response followed to its end; null: it runs on no connection of ours (HTTP/2, inject). */
type Followed = RawResponse & { [kConnection]?: Connection | null }

/**
 * One accepted TCP connection, whatever it carries: HTTP/1.1, TLS, HTTP/2. There is one for every
 * socket open, idle ones included, so it holds as little as it can.
 */
class Connection {
  /**
   * HTTP/1 responses in flight, oldest first: pipelined requests wait behind the first. Nearly
   * always none or one, kept as it is; an array only while requests are pipelined, so that an
   * idle connection keeps no storage and a request allocates none.
   */
  #responses: ServerResponse | ServerResponse[] | undefined = undefined
  session: Http2Session | undefined = undefined
  /** What HTTP/1 runs over: the socket itself, or the TLS socket on it. */
  http: net.Socket | undefined = undefined
  /** Its last response is chosen, or it was ended idle: a request read from now on is never run. */
  ending = false
  /** Accepted while the listeners were closing: its requests wait until they are closed. */
  acceptedWhileClosing = false
  /** Accepted while arrivals are noted, and its first request not seen yet. */
  arrived = false
  constructor (readonly socket: net.Socket) {}

  get idle (): boolean {
    return this.#responses === undefined
  }

  /** More than one response in flight: those behind the first get no 'close' if the socket dies. */
  get pipelined (): boolean {
    return Array.isArray(this.#responses)
  }

  /** The response to the newest request read, if one is in flight. */
  get newest (): ServerResponse | undefined {
    const responses = this.#responses
    return Array.isArray(responses) ? responses.at(-1) : responses
  }

  add (response: ServerResponse): void {
    const responses = this.#responses
    if (responses === undefined) this.#responses = response
    else if (Array.isArray(responses)) responses.push(response)
    else this.#responses = [responses, response]
  }

  remove (response: ServerResponse): void {
    const responses = this.#responses
    if (responses === response) {
      this.#responses = undefined
    } else if (Array.isArray(responses)) {
      const index = responses.indexOf(response)
      if (index !== -1) responses.splice(index, 1)
      if (responses.length === 1) this.#responses = responses[0]
    }
  }

  /** The responses in flight, oldest first. */
  responses (): ServerResponse[] {
    const responses = this.#responses
    return Array.isArray(responses) ? [...responses] : responses === undefined ? [] : [responses]
  }

  /** Forgets every response in flight and returns them: the connection closed under them. */
  takeResponses (): ServerResponse[] {
    const responses = this.responses()
    this.#responses = undefined
    return responses
  }
}

/**
 * The connection a request or session runs on: a TLS socket's is its TCP socket (`_parent`), and
 * an HTTP/2 session's socket is a proxy that reads through to the real one.
 */
function connectionOf (socket: net.Socket): Connection | undefined {
  const tagged = socket as Tagged<net.Socket> & { _parent?: Tagged<net.Socket> | null }
  return tagged[kConnection] ?? tagged._parent?.[kConnection]
}

export interface ConnectionsOptions {
  /** Called once for every request when it is over: its response closed, or its connection did first. */
  onRequestEnd (response: RawResponse): void
  /** Whether a request is the platform's probe, not traffic routed here. */
  isProbe (request: RawRequest): boolean
}

/** What closeIdle() did: how many connections it closed, and when their FINs have left. */
export interface ClosingIdle {
  closed: number
  finSent: Promise<void>
}

/** New connections that brought traffic since noteArrivals(): how many, and when the last came (performance.now()). */
export interface Arrivals {
  count: number
  lastAt: number
}

/**
 * Every connection of every server the app listens with, from accept to close, and which of
 * them carry a request. The shutdown works through it: responses retire their connection
 * (Connection: close, HTTP/2 GOAWAY), the listeners stop accepting, and once nothing is in
 * flight what carries no request (idle keep-alive, silent, half-sent, mid-handshake) is closed.
 * A connection is closed the way RFC 9112 (9.6) asks, so that what the client sent last never
 * turns into a reset that could erase the answers before it: a FIN once its last response is
 * written, then whatever still arrives is read and dropped until the client closes its side.
 */
export class Connections {
  /** Every open connection, and closed ones until the next sweep while serving (see #sweep). */
  readonly #open = new Set<Connection>()
  /** The size #open must reach before closed connections are swept out of it. */
  #sweepAt = SWEEP_MIN
  /** Since the shutdown began, each socket's 'close' is heard at once, which allClosed() needs. */
  #closesHeard = false
  readonly #servers = new Set<net.Server>()
  readonly #onRequestEnd: (response: RawResponse) => void
  readonly #onResponseClose: (this: RawResponse) => void
  readonly #onSocketClose: (this: Tagged<net.Socket>) => void
  readonly #isProbe: (request: RawRequest) => boolean
  #retiring = false
  #accepting = true
  #arrivals: Arrivals | undefined = undefined
  #whenAllClosed: Array<() => void> = []
  /** Connections accepted so far, on every server. */
  #accepted = 0
  /** While the listeners close: the requests held back until they are closed. */
  #held: Array<() => void> | undefined = undefined

  constructor ({ onRequestEnd, isProbe }: ConnectionsOptions) {
    this.#onRequestEnd = onRequestEnd
    this.#isProbe = isProbe
    const connections = this
    // One function for every response and one for every socket, not a closure each: `this` is what closed.
    this.#onResponseClose = function (this: RawResponse) { connections.#end(this) }
    this.#onSocketClose = function (this: Tagged<net.Socket>) { connections.#closed(this[kConnection]!) }
  }

  /** Follows a server's connections and requests; each server once. */
  watch (server: net.Server): void {
    if (this.#servers.has(server)) return
    this.#servers.add(server)
    const events = server as EventEmitter
    // First: Node's own listener starts an HTTP/2 session at once, and it must find its connection.
    events.prependListener('connection', (socket: net.Socket) => this.#accept(socket))
    events.on('session', (session: Http2Session) => this.#startSession(session))
    // Node's parser reads every request a client pipelines and emits each, and a listener cannot
    // stop the others: so requests are taken here, before the app sees them. One read after its
    // connection's last response was chosen is held back for good (its answer could never be
    // sent), one on a connection accepted while the listeners close waits until they are closed,
    // and the others are followed before any hook of the app can answer them.
    const emit = server.emit
    const connections = this
    // It runs for every event of the server: `arguments` passed on as they came makes no array.
    server.emit = function (this: net.Server, event: string | symbol, request?: unknown, response?: unknown): boolean {
      if (event === 'request' && !connections.#receive(this, request as RawRequest, response as RawResponse)) return false
      return Reflect.apply(emit, this, arguments)
    }
  }

  /**
   * Follows a request until it is over, then calls onRequestEnd once: when its response closes, or
   * its connection first. Requests that reached no server ('inject', a router called directly)
   * end on their response alone. Each response once; later calls do nothing.
   */
  follow (request: RawRequest, response: RawResponse): void {
    const followed = response as Followed
    if (followed[kConnection] !== undefined) return
    if (this.#arrivals !== undefined) this.#noteArrival(request)
    response.on('close', this.#onResponseClose)
    // HTTP/2 streams always close with their session: only HTTP/1 needs the connection's list.
    const connection = request.httpVersionMajor === 2 ? undefined : connectionOf(request.socket as net.Socket)
    followed[kConnection] = connection ?? null
    if (connection === undefined) return
    const http1 = response as ServerResponse
    connection.http ??= request.socket as net.Socket
    connection.add(http1)
    if (connection.pipelined) this.#hearClose(connection)
    if (this.#retiring) this.#makeLast(connection, http1)
  }

  /**
   * From now on, counts the connections accepted that bring a request other than a probe: the
   * evidence that something still routes here. Connections already open say nothing of routing
   * (a kube-proxy flow outlives its rule), and probes come straight to the address whatever routes.
   */
  noteArrivals (): Arrivals {
    this.#arrivals ??= { count: 0, lastAt: -Infinity }
    return this.#arrivals
  }

  /**
   * From now on each HTTP/1.1 connection closes after the newest request it has read
   * (Connection: close): what the client pipelines after that is never run, so a client that
   * always has a request on the way cannot keep its connection open.
   */
  retire (): void {
    this.#retiring = true
    this.#hearCloses()
    for (const connection of this.#open) {
      const newest = connection.newest
      if (newest !== undefined) this.#makeLast(connection, newest)
    }
  }

  /**
   * Closes every listener: a refused connection is what every proxy retries elsewhere for free.
   * HTTP/2 sessions get GOAWAY: their streams finish, and the client opens no new one here.
   * Resolves once the listeners are closed, with how many connections were accepted meanwhile.
   */
  stopAccepting (): Promise<number> {
    this.#accepting = false
    for (const connection of this.#open) connection.session?.close()
    // Closing a listener resets the connections the kernel has completed and the app not yet
    // accepted, whose clients have usually sent their request. The listeners close in the check
    // phase of the first turn whose poll accepted nothing, once the kernel (where it says) shows
    // their accept queues empty too, and what was accepted until then is served, once they are
    // closed: answered sooner, its client would come back with a new connection, and clients
    // that always do would keep the queue from ever emptying.
    const held: Array<() => void> = this.#held = []
    const startedAt = performance.now()
    const acceptedBefore = this.#accepted
    return new Promise(resolve => {
      // Counted from one check phase to the next, so that a whole poll lies between.
      let seen = -1
      const closeOnceNothingPending = (): void => {
        if ((this.#accepted !== seen || this.#connectionsQueued()) && performance.now() - startedAt < LISTENER_CLOSE_LIMIT_MS) {
          seen = this.#accepted
          setImmediate(closeOnceNothingPending)
          return
        }
        // net.Server's close, not http.Server's: that one would also cut idle keep-alive
        // connections a proxy may be reusing at this very moment.
        for (const server of this.#servers) if (server.listening) net.Server.prototype.close.call(server)
        this.#held = undefined
        for (const release of held) release()
        resolve(this.#accepted - acceptedBefore)
      }
      setImmediate(closeOnceNothingPending)
    })
  }

  /** Whether a listener has connections in its accept queue, read last thing before closing. */
  #connectionsQueued (): boolean {
    for (const server of this.#servers) if (server.listening && (acceptQueueLength(server) ?? 0) > 0) return true
    return false
  }

  /**
   * Resolves once the event loop has polled every socket again, so whatever had arrived has been
   * read and its requests have started: a loop that lags can leave a request written long ago
   * unread while the last response goes out.
   */
  readArrived (): Promise<void> {
    // The first turn may still be in the poll that is running now; the second follows a new one.
    return new Promise(resolve => setImmediate(() => setImmediate(resolve)))
  }

  /**
   * Closes every connection that carries no request with a FIN (closing with bytes unread would
   * reset it): what arrives after it is read and dropped until the client closes its side.
   * HTTP/2 sessions close once their last stream ends. Says how many it closed, and when their
   * FINs have left (Node sends a FIN on the loop's next turn).
   */
  closeIdle (): ClosingIdle {
    this.#hearCloses()
    // Counted down by one callback for all, not a promise each: there can be tens of thousands.
    let closed = 0
    let unsent = 0
    let allSent!: () => void
    const finSent = new Promise<void>(resolve => { allSent = resolve })
    const sent = (): void => { if (--unsent === 0) allSent() }
    for (const connection of this.#open) {
      if (connection.session !== undefined) {
        connection.session.close()
      } else if (connection.idle && !(connection.http ?? connection.socket).writableEnded) {
        // A connection whose last response said Connection: close is ending by itself.
        closed++
        unsent++
        this.#close(connection, sent)
      }
    }
    if (unsent === 0) allSent()
    return { closed, finSent }
  }

  /** Resolves once every connection is closed: each client has closed its side. */
  allClosed (): Promise<void> {
    this.#hearCloses()
    if (this.#open.size === 0) return Promise.resolve()
    return new Promise(resolve => { this.#whenAllClosed.push(resolve) })
  }

  /** The HTTP/1 responses in flight, on every connection. */
  * responses (): Iterable<ServerResponse> {
    for (const connection of this.#open) yield * connection.responses()
  }

  /** Destroys every connection still open: the drain ran out of time, or a client kept its side open. Returns how many. */
  destroyAll (): number {
    this.#hearCloses()
    const destroyed = this.#open.size
    for (const connection of this.#open) {
      connection.session?.destroy()
      connection.socket.destroy()
    }
    return destroyed
  }

  #accept (socket: Tagged<net.Socket>): void {
    const connection = new Connection(socket)
    socket[kConnection] = connection
    this.#accepted++
    connection.acceptedWhileClosing = this.#held !== undefined
    connection.arrived = this.#arrivals !== undefined
    this.#open.add(connection)
    if (this.#closesHeard) socket.on('close', this.#onSocketClose)
    else if (this.#open.size >= this.#sweepAt) this.#sweep()
  }

  /**
   * While serving, no socket has a 'close' listener of ours: Node adds one to the socket for each
   * response, and beside a second permanent listener that grows the socket's listener array to
   * twenty slots, 200 bytes held by every connection as long as it stays open. Closed connections
   * are dropped from the registry instead once it has grown by an eighth since the last sweep
   * (64 at least), which costs an accept a few steps on average and holds few closed ones.
   */
  #sweep (): void {
    for (const connection of this.#open) if (connection.socket.destroyed) this.#open.delete(connection)
    this.#sweepAt = this.#open.size + Math.max(SWEEP_MIN, this.#open.size >> 3)
  }

  /** From now on, each connection's close is heard as it happens: the shutdown waits for them. */
  #hearCloses (): void {
    if (this.#closesHeard) return
    this.#closesHeard = true
    this.#sweep()
    for (const connection of this.#open) this.#hearClose(connection)
  }

  #hearClose (connection: Connection): void {
    const socket = connection.socket
    // 'close' comes once: on() needs no once() wrapper.
    if (socket.listenerCount('close', this.#onSocketClose) === 0) socket.on('close', this.#onSocketClose)
  }

  #closed (connection: Connection): void {
    this.#open.delete(connection)
    // Node emits no 'close' for a pipelined response still queued behind another: end it here.
    if (!connection.idle) for (const response of connection.takeResponses()) this.#onRequestEnd(response)
    if (this.#open.size === 0) for (const resolve of this.#whenAllClosed.splice(0)) resolve()
  }

  /**
   * A request the server read: followed, held until the listeners are closed if its connection
   * came while they closed, or held back for good if its connection is ending.
   */
  #receive (server: net.Server, request: RawRequest, response: RawResponse): boolean {
    const connection = request.httpVersionMajor === 2 ? undefined : connectionOf(request.socket as net.Socket)
    if (connection?.ending === true) {
      // Its body is read and dropped too, so that the socket is read to its end, never reset.
      request.resume()
      return false
    }
    if (connection?.acceptedWhileClosing === true && this.#held !== undefined) {
      // A client gone meanwhile has had its request ended with its connection.
      this.#held.push(() => { if (!connection.socket.destroyed) server.emit('request', request, response) })
      return false
    }
    this.follow(request, response)
    return true
  }

  #noteArrival (request: RawRequest): void {
    const connection = connectionOf(request.socket as net.Socket)
    if (connection?.arrived !== true) return
    connection.arrived = false
    if (this.#isProbe(request)) return
    this.#arrivals!.count++
    this.#arrivals!.lastAt = performance.now()
  }

  #startSession (session: Http2Session): void {
    const connection = connectionOf(session.socket)
    if (connection !== undefined) connection.session = session
    if (!this.#accepting) session.close()
  }

  #end (response: Followed): void {
    const connection = response[kConnection]
    if (connection != null) connection.remove(response as ServerResponse)
    this.#onRequestEnd(response)
  }

  /**
   * Makes the connection's newest response its last (Connection: close). One already under way
   * (pipelined responses go out in order, so all before it are too) leaves the connection open
   * for one more request, which will be the last.
   */
  #makeLast (connection: Connection, response: ServerResponse): void {
    if (connection.ending || response.headersSent) return
    response.shouldKeepAlive = false
    connection.ending = true
    // Node ends a connection after a Connection: close response with destroySoon(): a FIN, then
    // a destroy as soon as it is written, which resets the connection if the client has sent
    // anything more. Closed our way instead.
    connection.http!.destroySoon = () => this.#close(connection)
  }

  /**
   * A FIN once what was written is sent (then `finished`, also called if the socket is destroyed
   * first); the socket closes when the client closes its side.
   */
  #close (connection: Connection, finished?: () => void): void {
    connection.ending = true
    ;(connection.http ?? connection.socket).end(finished)
  }
}
