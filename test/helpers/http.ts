import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'

export interface Response {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json (): any
  /** performance.now() when the last byte of the body arrived */
  endedAt: number
}

/** One request over real TCP; resolves with the whole response. */
export function request (port: number, path: string, {
  method = 'GET',
  body,
  agent = false,
  headers = {},
  host = '127.0.0.1'
}: { method?: string, body?: string, agent?: http.Agent | false, headers?: http.OutgoingHttpHeaders, host?: string } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method, agent, headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', chunk => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text), endedAt: performance.now() })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * An agent holding `sockets` keep-alive connections already open to the app, each good for one
 * more request once the app stops accepting connections (every response then closes its own).
 */
export async function openConnections (t: { teardown (fn: () => unknown): void }, port: number, sockets: number, host = '127.0.0.1'): Promise<http.Agent> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets })
  t.teardown(() => agent.destroy())
  await Promise.all(Array.from({ length: sockets }, () => request(port, '/health', { agent, host })))
  // A socket goes back to the pool just after its response ends.
  while (Object.values(agent.freeSockets).flat().length < sockets) await new Promise(resolve => setImmediate(resolve))
  return agent
}

/** The error code of a request that fails, e.g. ECONNREFUSED; rejects if it is answered. */
export function failure (pending: Promise<Response>): Promise<string> {
  return pending.then(
    response => { throw new Error(`expected a failure, got ${response.status}`) },
    (err: NodeJS.ErrnoException) => err.code ?? err.message
  )
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** The HTTP/1.1 responses read off one socket, in order (bodies framed by content-length). */
export function parseResponses (raw: string): RawResponse[] {
  const { responses, rest } = takeResponses(raw)
  if (rest.length > 0) throw new Error(`an incomplete response: ${JSON.stringify(rest)}`)
  return responses
}

/** The complete responses at the start of what a socket received, and what follows them. */
function takeResponses (raw: string): { responses: RawResponse[], rest: string } {
  const responses: RawResponse[] = []
  let rest = raw
  for (;;) {
    const headEnd = rest.indexOf('\r\n\r\n')
    if (headEnd === -1) break
    const [statusLine, ...lines] = rest.slice(0, headEnd).split('\r\n')
    const headers = Object.fromEntries(lines.map(line => {
      const colon = line.indexOf(':')
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
    }))
    const length = Number(headers['content-length'] ?? 0)
    const bodyStart = headEnd + 4
    if (rest.length < bodyStart + length) break
    responses.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.slice(bodyStart, bodyStart + length) })
    rest = rest.slice(bodyStart + length)
  }
  return { responses, rest }
}

/** A raw TCP connection that the test closes if it is still open. */
export async function connect (t: { teardown (fn: () => unknown): void }, port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect(port, host)
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** A GET as a client writes it on a raw socket: keep-alive, as HTTP/1.1 is by default. */
export const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`

/** How the server ended a connection: a FIN (the client read to the end), a reset, or a FIN then a reset. */
export interface Ending {
  fin: boolean
  /** The socket's error, e.g. ECONNRESET; undefined if there was none. */
  error: string | undefined
}

export interface RawClient {
  socket: net.Socket
  /** The responses received so far, in order. */
  responses: RawResponse[]
  /** Resolves once `count` responses have been received, with the last of them. */
  response (count: number): Promise<RawResponse>
  /** Settles once the socket is closed: how the server ended it. */
  closed: Promise<Ending>
}

/**
 * A raw connection that reads each HTTP/1.1 response as it completes, for what an HTTP client
 * hides: pipelining, the moment a request is written, a FIN told from a reset. `onResponse` runs
 * as each one arrives, so the client can write its next request at once.
 */
export async function rawClient (t: { teardown (fn: () => unknown): void }, port: number,
  onResponse: (response: RawResponse, count: number) => void = () => {}): Promise<RawClient> {
  const socket = await connect(t, port)
  const responses: RawResponse[] = []
  const waiting: Array<{ count: number, resolve (response: RawResponse): void }> = []
  const ending: Ending = { fin: false, error: undefined }
  let received = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => {
    const { responses: complete, rest } = takeResponses(received + chunk)
    received = rest
    for (const response of complete) {
      responses.push(response)
      onResponse(response, responses.length)
      for (const waiter of waiting.filter(waiter => waiter.count === responses.length)) waiter.resolve(response)
    }
  })
  socket.on('end', () => { ending.fin = true })
  socket.on('error', (err: NodeJS.ErrnoException) => { ending.error ??= err.code ?? err.message })
  // Not once(socket, 'close'): that rejects on an 'error' first, and a reset is an outcome here.
  const closed = new Promise<Ending>(resolve => socket.once('close', () => resolve(ending)))
  return {
    socket,
    responses,
    response: count => count <= responses.length
      ? Promise.resolve(responses[count - 1]!)
      : new Promise((resolve, reject) => {
        waiting.push({ count, resolve })
        closed.then(() => reject(new Error(`the connection closed after ${responses.length} responses, before response ${count}`)))
      }),
    closed
  }
}

export interface EventStream {
  /** Every event's text, in order. */
  events: string[]
  /** How the response ended: 'end' (complete), or the error that cut it. */
  ended: Promise<string>
}

/** A GET of a Server-Sent Events stream; resolves once its headers have arrived. */
export function openEventStream (port: number, path: string): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, response => {
      const events: string[] = []
      let buffer = ''
      response.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk
        const complete = buffer.split('\n\n')
        buffer = complete.pop()!
        events.push(...complete)
      })
      const ended = new Promise<string>(resolve => {
        response.on('end', () => resolve('end'))
        response.on('error', (err: Error) => resolve(err.message))
        response.on('aborted', () => resolve('aborted'))
      })
      resolve({ events, ended })
    }).on('error', reject)
  })
}
