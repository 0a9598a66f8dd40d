/** Where the service answers, and how to speak to it. */
export interface Target {
  /** The origin, for the report and for HTTP/2 sessions. */
  origin: string
  /** The hostname without IPv6 brackets, as net.connect() takes it. */
  host: string
  port: number
  tls: boolean
  http2: boolean
  /** Accept any certificate. */
  insecure: boolean
}

export function targetFor (url: URL, { http2 = false, insecure = false } = {}): Target {
  const tls = url.protocol === 'https:'
  return {
    origin: url.origin,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(url.port || (tls ? 443 : 80)),
    tls,
    http2,
    insecure
  }
}

/** What the report calls the protocol: HTTP/1.1, h2 (over TLS) or h2c (HTTP/2 over plain TCP). */
export function protocolName ({ tls, http2 }: Pick<Target, 'tls' | 'http2'>): 'HTTP/1.1' | 'h2' | 'h2c' {
  if (!http2) return 'HTTP/1.1'
  return tls ? 'h2' : 'h2c'
}
