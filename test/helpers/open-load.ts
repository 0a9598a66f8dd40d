// An open-loop load of POST /predict, every request's outcome counted: shared by the rolling
// restart behind nginx (test/helpers/rolling-restart.ts) and the load generator that runs inside
// the node namespace of the kube-proxy test (test/fixtures/open-load.ts).
import http from 'node:http'
import type { Teardown } from './app-process.js'

export interface LoadOptions {
  /** Where the requests go: 127.0.0.1 unless said otherwise. */
  host?: string
  port: number
  /**
   * true (the default): a pool of keep-alive connections, as browsers and SDKs keep; false: a new
   * connection for each request (Connection: close), as clients without a pool open them.
   */
  keepAlive?: boolean
  ratePerSecond: number
  /** How long requests are sent for; undefined: until stop(). */
  durationMs?: number
  /** The `ms` of each POST /predict, spread evenly over [min, max]. */
  workMs: readonly [number, number]
  /** A request unanswered after this long counts as failed ('timeout'). */
  timeoutMs: number
}

export interface LoadResult {
  sent: number
  /** Requests sent per second, first to last: the schedule kept. */
  sendRate: number
  /** Responses by status code. */
  statusCodes: Record<string, number>
  /** Requests that got no response, by error code. */
  errors: Record<string, number>
  /** Every non-2xx and error: what, and when it was sent (ms since the load started). */
  failures: Array<{ kind: string, sentAtMs: number }>
  latencyMs: { p50: number, p99: number, max: number }
  /** From the first request sent to the last one settled. */
  elapsedMs: number
}

export interface Load {
  /** performance.now() when the first request was sent. */
  startedAt: number
  /** Sends no more requests; `finished` resolves once those sent have settled. */
  stop (): void
  finished: Promise<LoadResult>
}

/**
 * An open-loop load: requests leave on schedule (request i at i / ratePerSecond s) whether or not
 * earlier ones were answered, as independent users send them, so a slow or stopping replica
 * cannot slow the load down. (autocannon's overallRate is closed-loop per connection: with 2-3 s
 * requests it made 52 of the 150 requests per second asked, and it sends each second's share in
 * a burst.)
 */
export function startOpenLoad (t: Teardown, {
  host = '127.0.0.1',
  port,
  keepAlive = true,
  ratePerSecond,
  durationMs,
  workMs: [minMs, maxMs],
  timeoutMs
}: LoadOptions): Load {
  let total = durationMs === undefined ? Infinity : Math.round(ratePerSecond * durationMs / 1000)
  // Without keep-alive and with no limit on sockets, Node sends Connection: close and opens a
  // connection per request.
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1000 }) : new http.Agent({ keepAlive: false })
  const result: LoadResult = { sent: 0, sendRate: 0, statusCodes: {}, errors: {}, failures: [], latencyMs: { p50: 0, p99: 0, max: 0 }, elapsedMs: 0 }
  const latencies: number[] = []
  const pending: Array<Promise<void>> = []
  const startedAt = performance.now()
  const count = (counts: Record<string, number>, key: string): void => { counts[key] = (counts[key] ?? 0) + 1 }

  function send (index: number): Promise<void> {
    const sentAt = performance.now()
    // The same sequence on every run, spread over the whole range.
    const body = JSON.stringify({ input: 'rolling restart', ms: minMs + (index * 137) % (maxMs - minMs + 1) })
    return new Promise(resolve => {
      let settled = false
      const settle = (failure?: string): void => {
        if (settled) return
        settled = true
        if (failure !== undefined) result.failures.push({ kind: failure, sentAtMs: Math.round(sentAt - startedAt) })
        resolve()
      }
      const onError = (err: Error): void => {
        if (settled) return
        const code = (err as NodeJS.ErrnoException).code ?? err.message
        count(result.errors, code)
        settle(code)
      }
      const request = http.request({
        host,
        port,
        method: 'POST',
        path: '/predict',
        agent,
        timeout: timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
      }, response => {
        let text = ''
        response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
        response.on('error', onError)
        response.on('end', () => {
          const status = response.statusCode!
          count(result.statusCodes, String(status))
          latencies.push(performance.now() - sentAt)
          if (status >= 200 && status < 300) return settle()
          // The plugin's 503s name themselves; a proxy's own 502, 503 and 504 pages do not.
          const code = /"code":"(\w+)"/.exec(text)?.[1]
          settle(code === undefined ? String(status) : `${status} ${code}`)
        })
      })
      request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })))
      request.on('error', onError)
      request.end(body)
    })
  }

  let allSent: () => void
  const sent = new Promise<void>(resolve => { allSent = resolve })
  const finish = (): void => {
    clearInterval(ticker)
    total = result.sent
    result.sendRate = (result.sent - 1) / ((performance.now() - startedAt) / 1000)
    allSent()
  }
  // Sends whatever is due every few milliseconds: the timer's lateness never lowers the rate.
  const ticker = setInterval(() => {
    const due = Math.min(total, Math.floor((performance.now() - startedAt) * ratePerSecond / 1000) + 1)
    while (result.sent < due) pending.push(send(result.sent++))
    if (result.sent === total) finish()
  }, 5)
  t.teardown(() => {
    clearInterval(ticker)
    agent.destroy()
  })

  const finished = (async () => {
    await sent
    await Promise.all(pending)
    result.elapsedMs = performance.now() - startedAt
    agent.destroy()
    latencies.sort((a, b) => a - b)
    const at = (quantile: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(quantile * latencies.length))] ?? 0)
    result.latencyMs = { p50: at(0.5), p99: at(0.99), max: Math.round(latencies.at(-1) ?? 0) }
    return result
  })()
  return {
    startedAt,
    stop: () => { if (result.sent < total) finish() },
    finished
  }
}

/** Failed requests at the client: every non-2xx response and every request with no response. */
export function failedRequests ({ statusCodes, errors }: LoadResult): number {
  const non2xx = Object.entries(statusCodes).filter(([code]) => !code.startsWith('2')).reduce((sum, [, n]) => sum + n, 0)
  return non2xx + Object.values(errors).reduce((sum, n) => sum + n, 0)
}

/** '12 × ECONNREFUSED, sent at 2510-2790 (12) ms': each kind of failure, and when those requests were sent. */
export function failureLines (failures: LoadResult['failures']): string[] {
  const byKind = new Map<string, number[]>()
  for (const { kind, sentAtMs } of failures) byKind.set(kind, [...byKind.get(kind) ?? [], sentAtMs])
  return [...byKind].map(([kind, sentAt]) => `${sentAt.length} × ${kind}, sent at ${summarizeTimes(sentAt)} ms`)
}

/** 2510-2790 (12), 9030-9300 (10): the failures' send times, grouped where they cluster. */
function summarizeTimes (times: number[]): string {
  const sorted = [...times].sort((a, b) => a - b)
  const groups: number[][] = []
  for (const time of sorted) {
    const last = groups.at(-1)
    if (last !== undefined && time - last.at(-1)! < 1000) last.push(time)
    else groups.push([time])
  }
  return groups.map(group => group.length === 1 ? `${group[0]}` : `${group[0]}-${group.at(-1)} (${group.length})`).join(', ')
}
