// (6) The rolling restart of test/e2e/nginx-rolling-restart.test.ts as a matrix: the plugin with
// readinessDelay 0 and 1000, and bare Fastify, behind nginx with its default proxy_next_upstream
// and with one that retries 502, 503 and POSTs. What counts is what the client sees: every
// request that failed, by kind. About 27 s per run, seven runs.
import { findNginx } from '../test/helpers/nginx.js'
import { failedRequests, type LoadResult } from '../test/helpers/open-load.js'
import { rollingRestartBehindNginx, summary, type Scenario } from '../test/helpers/rolling-restart.js'
import { round, servers, stopServers, type Figure } from './common.js'

const GRACE_PERIOD = 10_000
const RETRY_503 = 'error timeout http_502 http_503 non_idempotent'
const SHORT = [200, 300] as const
const LONG = [2000, 3000] as const

const RUNS: Array<{ replicas: string, scenario: Scenario }> = [
  ...[undefined, RETRY_503].flatMap(nextUpstream => [
    { replicas: 'plugin, readinessDelay 0', scenario: { plugin: { gracePeriod: GRACE_PERIOD, readinessDelay: 0 }, nextUpstream, workMs: SHORT } },
    { replicas: 'plugin, readinessDelay 1000', scenario: { plugin: { gracePeriod: GRACE_PERIOD, readinessDelay: 1000 }, nextUpstream, workMs: SHORT } },
    { replicas: 'bare Fastify (SIGTERM kills it)', scenario: { plugin: 'bare' as const, nextUpstream, workMs: SHORT } }
  ]),
  { replicas: 'plugin, readinessDelay 0', scenario: { plugin: { gracePeriod: GRACE_PERIOD, readinessDelay: 0 }, workMs: LONG } }
]

/** 502: 3, 503: 0, 504: 0, errors: 1 (ECONNRESET: 1) */
function failuresByKind ({ statusCodes, errors }: LoadResult): string {
  const byStatus = ['502', '503', '504'].map(code => `${code}: ${statusCodes[code] ?? 0}`)
  const other = Object.entries(statusCodes).filter(([code]) => !/^2|^50[234]$/.test(code)).map(([code, n]) => `${code}: ${n}`)
  const errorCount = Object.values(errors).reduce((sum, n) => sum + n, 0)
  const errorDetail = errorCount === 0 ? '' : ` (${Object.entries(errors).map(([code, n]) => `${code}: ${n}`).join(', ')})`
  return [...byStatus, ...other, `errors: ${errorCount}${errorDetail}`].join(', ')
}

export async function nginxRollingRestart (): Promise<Figure[]> {
  const nginx = findNginx()
  if (nginx === undefined) throw new Error('nginx is not installed (apt-get install nginx-light)')
  const figures: Figure[] = []
  for (const { replicas, scenario } of RUNS) {
    const config = scenario.nextUpstream === undefined ? 'default proxy_next_upstream' : `proxy_next_upstream ${scenario.nextUpstream}`
    const what = `${replicas}; ${config}; ${scenario.workMs.join('-')} ms requests`
    console.log(`\n${what}`)
    try {
      const run = await rollingRestartBehindNginx(servers, nginx, scenario)
      for (const line of summary(run)) console.log(`  ${line}`)
      const failed = failedRequests(run.load)
      const exits = run.stops.map(({ exit }) => exit.signal ?? `code ${exit.code}`)
      const graceful = scenario.plugin !== 'bare'
      figures.push({
        name: `Rolling restart of 3 replicas behind nginx, 150 POST/s for 24 s: ${what}`,
        result: `**${round(failed)} failed** of ${round(run.load.sent)} (${failuresByKind(run.load)}); ` +
          `replicas exited ${exits.join(', ')} after ${run.stops.map(stop => stop.signalToExitMs).join(', ')} ms; ` +
          `nginx logged ${Object.entries(run.nginxErrors).map(([what, n]) => `${n} × ${what}`).join(', ') || 'nothing'}`,
        target: graceful ? '≤ 1 failed, exit code 0' : '— (comparison)',
        ...(graceful ? { met: failed <= 1 && run.stops.every(({ exit }) => exit.code === 0) } : {})
      })
    } finally {
      await stopServers()
    }
  }
  return figures
}
