import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import type { Socket } from 'node:net'
import type { Target } from './target.js'

/** How one request ended, as the client saw it. */
export type Outcome =
  | { kind: 'response', status: number }
  /** connected: the connection was open (the request was sent, or being sent) when it failed. */
  | { kind: 'error', code: string, connected: boolean }
  /** HTTP/2: the service refused the stream before processing it (REFUSED_STREAM, or past a GOAWAY's last stream). */
  | { kind: 'stream-refused' }
  | { kind: 'timeout' }

export interface RequestSpec {
  method: string
  path: string
  headers: http.OutgoingHttpHeaders
  body: Buffer | undefined
  timeoutMs: number
}

/** Sends requests over a bounded pool of kept-alive connections (HTTP/1.1) or sessions (HTTP/2). */
export interface Client {
  /** Resolves with how the request ended; `onSent` is called once it has been written whole. */
  send (request: RequestSpec, onSent: () => void): Promise<Outcome>
  close (): void
}

export function createClient (target: Target, connections: number): Client {
  return target.http2 ? new Http2Client(target, connections) : new Http1Client(target, connections)
}

/** An error's code as the report counts it; node's 'socket hang up' is an ECONNRESET of its own kind. */
function errorCode (err: NodeJS.ErrnoException): string {
  return err.code === 'ECONNRESET' && err.message === 'socket hang up' ? 'socket hang up' : err.code ?? err.message
}

/** Node's Agent, as it is: it never retries, so each request ends once, in one class. */
class Http1Client implements Client {
  readonly #target: Target
  readonly #agent: http.Agent

  constructor (target: Target, connections: number) {
    this.#target = target
    const options = { keepAlive: true, maxSockets: connections }
    this.#agent = target.tls ? new https.Agent({ ...options, rejectUnauthorized: !target.insecure }) : new http.Agent(options)
  }

  send (spec: RequestSpec, onSent: () => void): Promise<Outcome> {
    const { host, port, tls } = this.#target
    return new Promise(resolve => {
      let connected = false
      let settled = false
      const settle = (outcome: Outcome): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(outcome)
      }
      const request = (tls ? https : http).request({ host, port, method: spec.method, path: spec.path, agent: this.#agent, headers: spec.headers })
      const timer = setTimeout(() => {
        settle({ kind: 'timeout' })
        request.destroy()
      }, spec.timeoutMs)
      // Over TLS, nothing of the request leaves before the handshake is done.
      request.once('socket', (socket: Socket) => {
        if (!socket.connecting) connected = true
        else socket.once(tls ? 'secureConnect' : 'connect', () => { connected = true })
      })
      request.once('finish', onSent)
      request.once('response', response => {
        response.resume()
        response.once('end', () => settle({ kind: 'response', status: response.statusCode! }))
        // Cut in the middle of the body: the answer never arrived whole.
        response.once('close', () => { if (!response.complete) settle({ kind: 'error', code: 'response cut', connected: true }) })
      })
      request.on('error', (err: NodeJS.ErrnoException) => settle({ kind: 'error', code: errorCode(err), connected }))
      request.end(spec.body)
    })
  }

  close (): void {
    this.#agent.destroy()
  }
}

interface Session { session: http2.ClientHttp2Session, connected: boolean }

/**
 * `connections` sessions, each request on the next of them in turn; a session that the service
 * closed (GOAWAY) or that failed is replaced by a new one when its turn comes, as a client's pool does.
 */
class Http2Client implements Client {
  readonly #target: Target
  readonly #sessions: Array<Session | undefined>
  #turn = 0

  constructor (target: Target, connections: number) {
    this.#target = target
    this.#sessions = new Array(connections)
  }

  #nextSession (): Session {
    const index = this.#turn++ % this.#sessions.length
    const current = this.#sessions[index]
    if (current !== undefined && !current.session.closed && !current.session.destroyed) return current
    const entry: Session = { session: connectHttp2(this.#target), connected: false }
    entry.session.once('connect', () => { entry.connected = true })
    // A session's error reaches each of its streams, where it is counted.
    entry.session.on('error', () => {})
    this.#sessions[index] = entry
    return entry
  }

  send (spec: RequestSpec, onSent: () => void): Promise<Outcome> {
    return new Promise(resolve => {
      const entry = this.#nextSession()
      let stream: http2.ClientHttp2Stream
      try {
        stream = entry.session.request({ ':method': spec.method, ':path': spec.path, ...spec.headers }, { endStream: spec.body === undefined })
      /* c8 ignore start: a session is replaced once it closes, before a request can find it closing */
      } catch (err) {
        resolve({ kind: 'error', code: errorCode(err as NodeJS.ErrnoException), connected: false })
        return
      }
      /* c8 ignore stop */
      let status: number | undefined
      let ended = false
      let error: NodeJS.ErrnoException | undefined
      const timer = setTimeout(() => {
        resolve({ kind: 'timeout' })
        stream.close(http2.constants.NGHTTP2_CANCEL)
      }, spec.timeoutMs)
      stream.once('finish', onSent)
      stream.once('response', headers => { status = Number(headers[':status']) })
      stream.once('end', () => { ended = true })
      stream.on('error', (err: NodeJS.ErrnoException) => { error = err })
      // 'close' comes last, once, whatever happened: a promise settles once, so a timeout before it wins.
      stream.once('close', () => {
        clearTimeout(timer)
        if (status !== undefined && ended && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) {
          resolve({ kind: 'response', status })
        } else if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
          resolve({ kind: 'stream-refused' })
        } else {
          resolve({ kind: 'error', code: status === undefined ? streamErrorCode(error, stream.rstCode) : 'response cut', connected: entry.connected })
        }
      })
      stream.resume()
      if (spec.body !== undefined) stream.end(spec.body)
    })
  }

  close (): void {
    for (const entry of this.#sessions) entry?.session.destroy()
  }
}

/** A stream's end as the report counts it: a session that failed passes its cause (ECONNREFUSED) to its pending streams. */
function streamErrorCode (error: NodeJS.ErrnoException | undefined, rstCode: number): string {
  if (error === undefined) return `stream reset (${rstCode})`
  return errorCode(error.code === 'ERR_HTTP2_STREAM_CANCEL' && error.cause !== undefined ? error.cause as NodeJS.ErrnoException : error)
}

/** A session over TLS (h2, by ALPN) or over plain TCP with prior knowledge (h2c). */
export function connectHttp2 ({ origin, insecure }: Target): http2.ClientHttp2Session {
  return http2.connect(origin, { rejectUnauthorized: !insecure })
}
