import http from 'node:http'
import type { VerifyOptions } from './arguments.js'
import type { Target } from './readiness.js'

/** How one request ended, as the client saw it. */
export type Outcome =
  | { kind: 'response', status: number }
  /** connected: the connection was open (the request was sent, or being sent) when it failed. */
  | { kind: 'error', code: string, connected: boolean }
  | { kind: 'timeout' }

/** Every request falls in exactly one class. */
export type RequestClass = 'ok' | 'status' | 'refused503' | 'connectionRefused' | 'reset' | 'timeout'

/** Lost: sent, and neither answered nor refused; the client cannot know whether it ran. */
export const LOST: readonly RequestClass[] = ['reset', 'timeout']

export function classify (outcome: Outcome): RequestClass {
  switch (outcome.kind) {
    case 'response':
      if (outcome.status >= 200 && outcome.status < 300) return 'ok'
      return outcome.status === 503 ? 'refused503' : 'status'
    case 'error':
      // Nothing was sent on a connection that never opened: retrying it is free.
      return outcome.connected ? 'reset' : 'connectionRefused'
    case 'timeout':
      return 'timeout'
  }
}

export interface RequestCounts {
  total: number
  ok: number
  /** Answers other than 2xx and 503, by status code. */
  status: Record<string, number>
  refused503: number
  connectionRefused: number
  reset: number
  timeout: number
  lost: number
  /** Errors by code (ECONNREFUSED, ECONNRESET, 'socket hang up'…), whatever their class. */
  errors: Record<string, number>
  /** Sent and not yet answered when the signal went out. */
  inFlightAtSignal: number
  /** Waiting for one of the --connections when the signal went out. */
  waitingAtSignal: number
  sentAfterSignal: number
  okAfterSignal: number
}

export type LoadOptions = Pick<VerifyOptions, 'method' | 'path' | 'body' | 'headers' | 'rate' | 'connections' | 'timeout'>

/** Counts before the first request: each class at 0. */
export const noRequests = (): RequestCounts => ({
  total: 0,
  ok: 0,
  status: {},
  refused503: 0,
  connectionRefused: 0,
  reset: 0,
  timeout: 0,
  lost: 0,
  errors: {},
  inFlightAtSignal: 0,
  waitingAtSignal: 0,
  sentAfterSignal: 0,
  okAfterSignal: 0
})

interface Pending { sent: boolean, settled: boolean }

/**
 * An open-loop load: request i leaves at i / rate seconds whether or not earlier ones were
 * answered, as independent users send them, so a slow or stopping service cannot slow it down.
 * Requests share at most `connections` keep-alive connections; node's Agent never retries, so
 * each request ends once, in one class.
 */
export class Load {
  readonly counts = noRequests()

  readonly #target: Target
  readonly #options: LoadOptions
  readonly #agent: http.Agent
  readonly #body: Buffer | undefined
  readonly #headers: http.OutgoingHttpHeaders
  readonly #pending = new Set<Pending>()
  readonly #ticker: NodeJS.Timeout
  readonly #startedAt = performance.now()
  #signalled = false
  #allSettled: (() => void) | undefined

  constructor (target: Target, options: LoadOptions) {
    this.#target = target
    this.#options = options
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: options.connections })
    this.#body = options.body === undefined ? undefined : Buffer.from(options.body)
    this.#headers = { ...contentType(options.body), ...options.headers }
    if (this.#body !== undefined) this.#headers['content-length'] = this.#body.length
    // Sends whatever is due every few milliseconds: a late timer never lowers the rate.
    this.#ticker = setInterval(() => {
      const due = Math.floor((performance.now() - this.#startedAt) * options.rate / 1000) + 1
      while (this.counts.total < due) this.#send()
    }, 5)
    this.#send()
  }

  /** Requests sent and not yet answered. */
  get inFlight (): number {
    let inFlight = 0
    for (const request of this.#pending) if (request.sent) inFlight++
    return inFlight
  }

  markSignal (): void {
    this.#signalled = true
    this.counts.inFlightAtSignal = this.inFlight
    this.counts.waitingAtSignal = this.#pending.size - this.counts.inFlightAtSignal
  }

  /** Stops sending; resolves once every request sent has ended (each has its timeout). */
  async stop (): Promise<RequestCounts> {
    clearInterval(this.#ticker)
    if (this.#pending.size > 0) await new Promise<void>(resolve => { this.#allSettled = resolve })
    this.#agent.destroy()
    return this.counts
  }

  #send (): void {
    const counts = this.counts
    counts.total++
    const afterSignal = this.#signalled
    if (afterSignal) counts.sentAfterSignal++
    const pending: Pending = { sent: false, settled: false }
    this.#pending.add(pending)
    let connected = false

    const settle = (outcome: Outcome): void => {
      if (pending.settled) return
      pending.settled = true
      clearTimeout(timer)
      this.#pending.delete(pending)
      if (outcome.kind === 'error') counts.errors[outcome.code] = (counts.errors[outcome.code] ?? 0) + 1
      const kind = classify(outcome)
      if (outcome.kind === 'response' && kind === 'status') {
        counts.status[outcome.status] = (counts.status[outcome.status] ?? 0) + 1
      } else if (kind !== 'status') {
        counts[kind]++
      }
      if (LOST.includes(kind)) counts.lost++
      if (kind === 'ok' && afterSignal) counts.okAfterSignal++
      if (this.#pending.size === 0) this.#allSettled?.()
    }

    const { host, port } = this.#target
    const request = http.request({ host, port, method: this.#options.method, path: this.#options.path, agent: this.#agent, headers: this.#headers })
    const timer = setTimeout(() => {
      settle({ kind: 'timeout' })
      request.destroy()
    }, this.#options.timeout)
    request.once('socket', socket => {
      if (!socket.connecting) connected = true
      else socket.once('connect', () => { connected = true })
    })
    request.once('finish', () => { pending.sent = true })
    request.once('response', response => {
      response.resume()
      response.once('end', () => settle({ kind: 'response', status: response.statusCode! }))
      // Cut in the middle of the body: the answer never arrived whole.
      response.once('close', () => { if (!response.complete) settle({ kind: 'error', code: 'response cut', connected: true }) })
    })
    request.on('error', (err: NodeJS.ErrnoException) => {
      settle({ kind: 'error', code: err.code === 'ECONNRESET' && err.message === 'socket hang up' ? 'socket hang up' : err.code ?? err.message, connected })
    })
    request.end(this.#body)
  }
}

function contentType (body: string | undefined): http.OutgoingHttpHeaders {
  if (body === undefined) return {}
  try {
    JSON.parse(body)
    return { 'content-type': 'application/json' }
  } catch {
    return { 'content-type': 'text/plain; charset=utf-8' }
  }
}
