import type http from 'node:http'
import { createClient, type Client, type Outcome } from './client.js'
import type { Target } from './target.js'

export type { Outcome }

/** Every request falls in exactly one class. */
export type RequestClass = 'ok' | 'status' | 'refused503' | 'connectionRefused' | 'streamRefused' | 'reset' | 'timeout'

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
    case 'stream-refused':
      // HTTP/2 says the stream was never processed: retrying it is free too.
      return 'streamRefused'
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
  /** HTTP/2 streams the service refused unprocessed (REFUSED_STREAM, or past its GOAWAY's last stream). */
  streamRefused: number
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

export interface LoadOptions {
  method: string
  path: string
  body: string | undefined
  headers: Record<string, string>
  rate: number
  connections: number
  timeout: number
}

/** Counts before the first request: each class at 0. */
export const noRequests = (): RequestCounts => ({
  total: 0,
  ok: 0,
  status: {},
  refused503: 0,
  connectionRefused: 0,
  streamRefused: 0,
  reset: 0,
  timeout: 0,
  lost: 0,
  errors: {},
  inFlightAtSignal: 0,
  waitingAtSignal: 0,
  sentAfterSignal: 0,
  okAfterSignal: 0
})

interface Pending { sent: boolean }

/**
 * An open-loop load: request i leaves at i / rate seconds whether or not earlier ones were
 * answered, as independent users send them, so a slow or stopping service cannot slow it down.
 * Requests share at most `connections` keep-alive connections (HTTP/2: sessions); the client
 * never retries, so each request ends once, in one class.
 */
export class Load {
  readonly counts = noRequests()

  readonly #options: LoadOptions
  readonly #client: Client
  readonly #body: Buffer | undefined
  readonly #headers: http.OutgoingHttpHeaders
  readonly #pending = new Set<Pending>()
  readonly #ticker: NodeJS.Timeout
  readonly #startedAt = performance.now()
  #signalled = false
  #allSettled: (() => void) | undefined

  constructor (target: Target, options: LoadOptions) {
    this.#options = options
    this.#client = createClient(target, options.connections)
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
    this.#client.close()
    return this.counts
  }

  /** Stops at once, whatever is still in flight (the run was aborted). */
  destroy (): void {
    clearInterval(this.#ticker)
    this.#client.close()
  }

  #send (): void {
    const counts = this.counts
    counts.total++
    const afterSignal = this.#signalled
    if (afterSignal) counts.sentAfterSignal++
    const pending: Pending = { sent: false }
    this.#pending.add(pending)
    const { method, path, timeout } = this.#options
    this.#client.send({ method, path, headers: this.#headers, body: this.#body, timeoutMs: timeout }, () => { pending.sent = true }).then(outcome => {
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
    })
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
