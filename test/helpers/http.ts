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
  headers = {}
}: { method?: string, body?: string, agent?: http.Agent | false, headers?: http.OutgoingHttpHeaders } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent, headers }, res => {
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
