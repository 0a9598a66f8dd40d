import http from 'node:http'

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
  const responses: RawResponse[] = []
  let rest = raw
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n')
    if (headEnd === -1) throw new Error(`an incomplete response: ${JSON.stringify(rest)}`)
    const [statusLine, ...lines] = rest.slice(0, headEnd).split('\r\n')
    const headers = Object.fromEntries(lines.map(line => {
      const colon = line.indexOf(':')
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
    }))
    const length = Number(headers['content-length'] ?? 0)
    const bodyStart = headEnd + 4
    responses.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.slice(bodyStart, bodyStart + length) })
    rest = rest.slice(bodyStart + length)
  }
  return responses
}
