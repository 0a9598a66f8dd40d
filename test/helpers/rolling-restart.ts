// A rolling restart behind nginx under an open-loop load: shared by test/e2e/nginx-rolling-restart
// and bench/nginx-rolling-restart, which runs the same scenario with more variants.
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { fixtureArgs, startNodeApp, type AppProcess, type Exit, type Teardown } from './app-process.js'
import { startNginx } from './nginx.js'
import { freePort, waitUntilListenable } from './system.js'

export interface LoadOptions {
  port: number
  ratePerSecond: number
  durationMs: number
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
  finished: Promise<LoadResult>
}

/**
 * An open-loop load: requests leave on schedule (request i at i / ratePerSecond s) whether or not
 * earlier ones were answered, as independent users send them, so a slow or stopping replica
 * cannot slow the load down. (autocannon's overallRate is closed-loop per connection: with 2-3 s
 * requests it made 52 of the 150 requests per second asked, and it sends each second's share in
 * a burst.) The client keeps its connections to nginx alive, as browsers and SDKs do.
 */
export function startOpenLoad (t: Teardown, { port, ratePerSecond, durationMs, workMs: [minMs, maxMs], timeoutMs }: LoadOptions): Load {
  const total = Math.round(ratePerSecond * durationMs / 1000)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1000 })
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
        host: '127.0.0.1',
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
          // The plugin's 503s name themselves; nginx's own 502, 503 and 504 pages do not.
          const code = /"code":"(\w+)"/.exec(text)?.[1]
          settle(code === undefined ? String(status) : `${status} ${code}`)
        })
      })
      request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })))
      request.on('error', onError)
      request.end(body)
    })
  }

  let ticker: NodeJS.Timeout | undefined
  const allSent = new Promise<void>(resolve => {
    // Sends whatever is due every few milliseconds: the timer's lateness never lowers the rate.
    ticker = setInterval(() => {
      const due = Math.min(total, Math.floor((performance.now() - startedAt) * ratePerSecond / 1000) + 1)
      while (result.sent < due) pending.push(send(result.sent++))
      if (result.sent < total) return
      clearInterval(ticker)
      result.sendRate = (total - 1) / ((performance.now() - startedAt) / 1000)
      resolve()
    }, 5)
  })
  t.teardown(() => {
    clearInterval(ticker)
    agent.destroy()
  })

  const finished = (async () => {
    await allSent
    await Promise.all(pending)
    result.elapsedMs = performance.now() - startedAt
    agent.destroy()
    latencies.sort((a, b) => a - b)
    const at = (quantile: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(quantile * latencies.length))] ?? 0)
    result.latencyMs = { p50: at(0.5), p99: at(0.99), max: Math.round(latencies.at(-1) ?? 0) }
    return result
  })()
  return { startedAt, finished }
}

export interface Stop {
  port: number
  exit: Exit
  /** When the SIGTERM was sent, in ms since the load started. */
  signalledAtMs: number
  signalToExitMs: number
  /** Until the port could be listened on again: the old replica had closed its listener, or exited. */
  signalToPortFreeMs: number
  /** Until the replacement listened on the same port. */
  signalToReplacementMs: number
}

/**
 * One step of a rolling restart: SIGTERM the replica, start its replacement on the same port as
 * soon as the port is free, then await the old one's exit. The port is free once the old replica
 * stops listening: when it starts refusing connections, or else when it exits.
 */
export async function restartInPlace (replica: AppProcess, startReplica: (port: number) => Promise<AppProcess>,
  { loadStartedAt, gracePeriod }: { loadStartedAt: number, gracePeriod: number }): Promise<Stop> {
  const { port } = replica
  const signalledAt = performance.now()
  replica.kill('SIGTERM')
  // Polled every 10 ms until a second past the grace period, when the platform's SIGKILL would have freed it.
  await waitUntilListenable(port, { attempts: Math.ceil((gracePeriod + 1000) / 10), intervalMs: 10 })
  const portFreeAt = performance.now()
  // The port was free a moment ago, but an outgoing connection may since have taken it as its
  // local port (the replicas' ports come from the same ephemeral range): then try again.
  for (let attempt = 1; ; attempt++) {
    try {
      await startReplica(port)
      break
    } catch (err) {
      if (attempt === 5 || !/EADDRINUSE/.test((err as Error).message)) throw err
      await sleep(50)
    }
  }
  const replacementAt = performance.now()
  const exit = await replica.exited
  return {
    port,
    exit,
    signalledAtMs: Math.round(signalledAt - loadStartedAt),
    signalToExitMs: Math.round(exit.at - signalledAt),
    signalToPortFreeMs: Math.round(portFreeAt - signalledAt),
    signalToReplacementMs: Math.round(replacementAt - signalledAt)
  }
}

export interface Scenario {
  /** The replicas (test/fixtures/service.ts) with the plugin and these options, or bare Fastify. */
  plugin: { gracePeriod: number, readinessDelay: number } | 'bare'
  /** nginx's proxy_next_upstream, or its default (`error timeout`). */
  nextUpstream?: string
  /** How long each POST /predict takes, spread over [min, max] ms. */
  workMs: readonly [number, number]
}

export interface RollingRestart {
  load: LoadResult
  stops: Stop[]
  /** nginx's error log, lines counted by what they say: 'connect() failed (111: Connection refused)': 2. */
  nginxErrors: Record<string, number>
}

const REPLICAS = 3
const RATE_PER_SECOND = 150
const LOAD_MS = 24_000
/** Under load first, so nginx holds keep-alive connections to every replica. */
const FIRST_STOP_MS = 2500
// nginx skips a replica for fail_timeout (10 s, counted in whole seconds) after one failed
// attempt (max_fails 1), such as a connection refused between the old replica's listener closing
// and its replacement's opening. It then sends it one request, and skips it again until that one
// is answered: up to 11 s plus a request (3 s) in all. Were all three replicas skipped at once,
// nginx would answer 502 itself ("no live upstreams"), so the third restart waits until the first
// replica is back in rotation.
const STOP_EVERY_MS = 8000

/** Three replicas on fixed ports behind nginx, 150 requests/s for 24 s, and every replica restarted in turn. */
export async function rollingRestartBehindNginx (t: Teardown, nginxBinary: string, { plugin, nextUpstream, workMs }: Scenario): Promise<RollingRestart> {
  const env = plugin === 'bare' ? { GRACEFUL: '0' } : { GRACEFUL: '1', PLUGIN_OPTIONS: JSON.stringify(plugin) }
  const gracePeriod = plugin === 'bare' ? 0 : plugin.gracePeriod
  const startReplica = (port: number): Promise<AppProcess> =>
    startNodeApp(t, fixtureArgs('service.ts'), { ...env, PORT: String(port) })

  const ports = await Promise.all(Array.from({ length: REPLICAS }, freePort))
  const replicas = await Promise.all(ports.map(startReplica))
  const nginx = await startNginx(t, nginxBinary, { upstreamPorts: ports, ...(nextUpstream === undefined ? {} : { nextUpstream }) })
  const load = startOpenLoad(t, { port: nginx.port, ratePerSecond: RATE_PER_SECOND, durationMs: LOAD_MS, workMs, timeoutMs: 30_000 })

  const stops: Stop[] = []
  for (const [i, replica] of replicas.entries()) {
    await sleep(Math.max(0, load.startedAt + FIRST_STOP_MS + i * STOP_EVERY_MS - performance.now()))
    stops.push(await restartInPlace(replica, startReplica, { loadStartedAt: load.startedAt, gracePeriod }))
  }
  const result = await load.finished

  const nginxErrors: Record<string, number> = {}
  for (const line of await nginx.errorLog()) {
    // "... [error] 123#123: *45 connect() failed (111: Connection refused) while connecting to upstream, client: ..."
    const what = /^\S+ \S+ \[\w+\] \d+#\d+: (?:\*\d+ )?(.*?)(?:,| while| upstream:|$)/.exec(line)?.[1] ?? line
    nginxErrors[what] = (nginxErrors[what] ?? 0) + 1
  }
  return { load: result, stops, nginxErrors }
}

/** Failed requests at the client: every non-2xx response and every request with no response. */
export function failedRequests ({ statusCodes, errors }: LoadResult): number {
  const non2xx = Object.entries(statusCodes).filter(([code]) => !code.startsWith('2')).reduce((sum, [, n]) => sum + n, 0)
  return non2xx + Object.values(errors).reduce((sum, n) => sum + n, 0)
}

/** The run in a few lines, for t.comment and the benchmark's console. */
export function summary ({ load, stops, nginxErrors }: RollingRestart): string[] {
  const failures = new Map<string, number[]>()
  for (const { kind, sentAtMs } of load.failures) failures.set(kind, [...failures.get(kind) ?? [], sentAtMs])
  return [
    `${load.sent} requests in ${(load.elapsedMs / 1000).toFixed(1)} s (sent at ${load.sendRate.toFixed(1)} per second), ` +
      `latency p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, max ${load.latencyMs.max} ms`,
    `status codes ${JSON.stringify(load.statusCodes)}; errors ${JSON.stringify(load.errors)}`,
    ...[...failures].map(([kind, sentAt]) => `${sentAt.length} × ${kind}, sent at ${summarizeTimes(sentAt)} ms`),
    'SIGTERMs at ' + stops.map(stop => stop.signalledAtMs).join(', ') + ' ms; per replica, SIGTERM to port free / replacement listening / exit: ' +
      stops.map(stop => `${stop.signalToPortFreeMs} / ${stop.signalToReplacementMs} / ${stop.signalToExitMs} ms (${stop.exit.signal ?? `code ${stop.exit.code}`})`).join(', '),
    `nginx error log: ${JSON.stringify(nginxErrors)}`
  ]
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
