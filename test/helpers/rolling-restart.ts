// A rolling restart behind nginx under an open-loop load: shared by test/e2e/nginx-rolling-restart
// and bench/nginx-rolling-restart, which runs the same scenario with more variants.
import { setTimeout as sleep } from 'node:timers/promises'
import { fixtureArgs, startNodeApp, type AppProcess, type Exit, type Teardown } from './app-process.js'
import { startNginx } from './nginx.js'
import { failureLines, startOpenLoad, type LoadResult } from './open-load.js'
import { freePort, waitUntilListenable } from './system.js'

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

/** The run in a few lines, for t.comment and the benchmark's console. */
export function summary ({ load, stops, nginxErrors }: RollingRestart): string[] {
  return [
    `${load.sent} requests in ${(load.elapsedMs / 1000).toFixed(1)} s (sent at ${load.sendRate.toFixed(1)} per second), ` +
      `latency p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, max ${load.latencyMs.max} ms`,
    `status codes ${JSON.stringify(load.statusCodes)}; errors ${JSON.stringify(load.errors)}`,
    ...failureLines(load.failures),
    'SIGTERMs at ' + stops.map(stop => stop.signalledAtMs).join(', ') + ' ms; per replica, SIGTERM to port free / replacement listening / exit: ' +
      stops.map(stop => `${stop.signalToPortFreeMs} / ${stop.signalToReplacementMs} / ${stop.signalToExitMs} ms (${stop.exit.signal ?? `code ${stop.exit.code}`})`).join(', '),
    `nginx error log: ${JSON.stringify(nginxErrors)}`
  ]
}
