// The project's claim, shown as it happens in production: a load balancer in front of three
// replicas, a steady load, and a rolling update that stops every replica in turn. With the plugin
// not one request may fail; the same run against bare Fastify shows what the plugin prevents.
import t, { type Test } from 'tap'
import autocannon from 'autocannon'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { fixtureArgs, hasMessage, isIncomingRequest, startCommand, startNodeApp, type AppProcess, type Exit, type LogLine } from '../helpers/app-process.js'
import { exampleAppEnv } from '../helpers/example-app.js'
import { cerebriumOptions } from '../../lib/cerebrium.js'
import { findHaproxy, startHaproxy } from '../helpers/haproxy.js'

const GRACE_PERIOD = 5000
// HAProxy polls /ready every 100 ms: until it has seen the 503, it still routes here. Refusing at
// once would make this replica, idle after its quick 503s, take every request HAProxy had queued
// for a slot (maxconn), and refuse them faster than retries can go elsewhere (about 100 of 4300
// reached the client as 503s when we tried). Serving on for three polls is the cure, as on
// Kubernetes: the load balancer stops routing first.
const READINESS_DELAY = 300
const REPLICAS = 3
// Closed loop: each connection sends its next request as soon as the last is answered, so there
// are always requests in flight (autocannon's rate limits send bursts, then idle until the next
// second). 40 connections alternating /hello and /predict make about 300 requests per second.
// The load runs until the update is done (its duration is only a bound): on a busy machine the
// replicas start slowly, and a fixed duration ran out before the update did.
const LOAD = { maxDurationSeconds: 120, connections: 40, minimumRequests: 3000 }
/** Responses between two steps of the update (about 2 s of load), so each stop happens under load. */
const RESPONSES_BETWEEN_STEPS = 600

const exampleApp = fileURLToPath(new URL('../../dist/example-app/server.js', import.meta.url))
// The load balancer sends a replica no more than cerebrium.toml's replica_concurrency at once, as
// Cerebrium's router does; the app enforces the same figure (maxConcurrency), read from the same file.
const { maxConcurrency: replicaConcurrency } = cerebriumOptions({
  file: fileURLToPath(new URL('../../cerebrium.toml', import.meta.url)),
  env: {}
}).options
const haproxy = findHaproxy()
const missing = haproxy === undefined && 'haproxy is not installed (apt-get install haproxy; .ci/run does it)'
if (missing && process.env.CI === 'true') t.fail(`${missing}: CI must run the load-balancer test`)

interface Load {
  /** Resolves once this many more responses have arrived; rejects if the load ends first. */
  afterResponses (count: number): Promise<void>
  /** Ends the load; `finished` then resolves. */
  stop (): void
  /** Responses so far. */
  readonly responses: number
  finished: Promise<autocannon.Result>
  errorMessages: Map<string, number>
}

/** Load until stopped: /hello, then /predict of 50 to 500 ms, on every connection in turn. */
function startLoad (t: Test, port: number): Load {
  let stop = (): void => {}
  let predictions = 0
  let responses = 0
  const waiters = new Set<{ target: number, resolve: () => void }>()
  const errorMessages = new Map<string, number>()
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: LOAD.connections,
      duration: LOAD.maxDurationSeconds,
      requests: [
        { method: 'POST', path: '/hello' },
        {
          method: 'POST',
          path: '/predict',
          headers: { 'content-type': 'application/json' },
          // Spread over 50..500 ms, the same sequence on every run.
          setupRequest: request => ({ ...request, body: JSON.stringify({ input: 'rolling update', ms: 50 + (predictions++ * 137) % 451 }) })
        }
      ]
    }, (err, result) => err ? reject(err) : resolve(result))
    stop = () => instance.stop()
    t.teardown(stop)
    instance.on('response', () => {
      responses++
      for (const waiter of waiters) {
        if (responses >= waiter.target) { waiters.delete(waiter); waiter.resolve() }
      }
    })
    instance.on('reqError', (err: Error) => errorMessages.set(err.message, (errorMessages.get(err.message) ?? 0) + 1))
  })

  return {
    finished,
    stop: () => stop(),
    get responses () { return responses },
    errorMessages,
    afterResponses: count => new Promise((resolve, reject) => {
      waiters.add({ target: responses + count, resolve })
      finished.then(() => reject(new Error('the load ended before the rolling update did')), reject)
    })
  }
}

interface Stop { exit: Exit, signalToExitMs: number, logs: LogLine[] }

/**
 * Three replicas behind HAProxy under load; then, one after another, as a rolling update does:
 * SIGTERM a replica, start its replacement and put it into rotation, wait for the old one to exit.
 */
async function rollingUpdate (t: Test, startReplica: () => Promise<AppProcess>) {
  const lb = await startHaproxy(t, haproxy!, { slots: 2 * REPLICAS, maxconn: replicaConcurrency })
  const replicas = await Promise.all(Array.from({ length: REPLICAS }, startReplica))
  for (const replica of replicas) await lb.addServer(replica.port)

  const load = startLoad(t, lb.port)
  const stops: Stop[] = []
  for (const replica of replicas) {
    await load.afterResponses(RESPONSES_BETWEEN_STEPS)
    const signalledAt = performance.now()
    replica.kill('SIGTERM')
    const replacement = await startReplica()
    await lb.addServer(replacement.port)
    const exit = await replica.exited
    stops.push({ exit, signalToExitMs: exit.at - signalledAt, logs: replica.logs })
  }
  // The replacements, too, must have served under load before the run counts, and the run must
  // be long enough to count.
  await load.afterResponses(Math.max(RESPONSES_BETWEEN_STEPS, LOAD.minimumRequests - load.responses))
  load.stop()
  const result = await load.finished
  const lbStats = await lb.backendStats()

  t.comment(`${result.requests.total} requests in ${result.duration.toFixed(1)} s (${result.requests.average} req/s), ` +
    `latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms`)
  const statusCodes = Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => `${code}: ${count}`)
  t.comment(`status codes {${statusCodes.join(', ')}}; ${result.errors} errors (${result.timeouts} timeouts) ` +
    JSON.stringify(Object.fromEntries(load.errorMessages)))
  t.comment(`HAProxy: ${lbStats.wretr} retries, ${lbStats.wredis} redispatches, ` +
    `${lbStats.econ} connection errors, ${lbStats.eresp} response errors`)
  t.comment('stopped replicas, SIGTERM to exit: ' + stops.map(({ exit, signalToExitMs }) =>
    `${signalToExitMs.toFixed(0)} ms (${exit.signal ?? `code ${exit.code}`})`).join(', '))
  t.ok(result.requests.total >= LOAD.minimumRequests, `the load ran (${result.requests.total} requests)`)
  return { result, stops }
}

t.test('rolling update behind HAProxy with the plugin: zero failed requests', { skip: missing }, async t => {
  t.ok(existsSync(exampleApp), `${exampleApp} is built (npm run build)`)
  const { result, stops } = await rollingUpdate(t, () => startCommand(t, process.execPath, [exampleApp], {
    env: exampleAppEnv({ GRACE_PERIOD_MS: String(GRACE_PERIOD), READINESS_DELAY_MS: String(READINESS_DELAY) })
  }))

  t.equal(result.errors, 0, 'no request failed (connection error, reset or timeout)')
  t.equal(result.non2xx, 0, 'every response is a 2xx')
  t.equal(stops.length, REPLICAS, 'every original replica was stopped')
  for (const [i, { exit, signalToExitMs, logs }] of stops.entries()) {
    const inFlight = logs.find(hasMessage(/shutdown started/))?.activeRequests
    t.ok(Number(inFlight) > 0, `replica ${i + 1} had requests in flight at SIGTERM (${inFlight})`)
    t.equal(exit.code, 0, `replica ${i + 1} exited 0: every one of them was answered`)
    t.ok(signalToExitMs < GRACE_PERIOD, `replica ${i + 1} exited within gracePeriod (${signalToExitMs.toFixed(0)} < ${GRACE_PERIOD} ms)`)
  }
})

/** Requests a replica logged as started and never as completed: cut when it died. */
function cutRequests (logs: LogLine[]): number {
  const started = new Set(logs.filter(isIncomingRequest).map(line => line.reqId))
  for (const line of logs) if (line.msg === 'request completed') started.delete(line.reqId)
  return started.size
}

// HAProxy replays a request whose connection closed before any response (its layer-7 retries),
// so the requests that SIGTERM cuts in a bare replica seldom reach the client as failures: they
// run twice instead. What the plugin prevents is the cut itself, counted here from the bare
// replicas' own logs; with the plugin, exit code 0 says every request in flight was answered.
t.test('the same rolling update against bare Fastify, for comparison (its failures do not fail the suite)', { skip: missing }, async t => {
  const { result, stops } = await rollingUpdate(t, () => startNodeApp(t, fixtureArgs('service.ts'), {
    LOG_REQUESTS: '1'
  }))

  const cut = stops.map(stop => cutRequests(stop.logs))
  const failed = result.errors + result.non2xx
  t.comment(`bare Fastify: ${failed} failed requests seen by the client (${result.errors} errors, ${result.non2xx} non-2xx); ` +
    `${cut.reduce((a, b) => a + b, 0)} requests cut in flight by SIGTERM (${cut.join(' + ')}), ` +
    'replayed by HAProxy on another replica')
  for (const [i, { exit }] of stops.entries()) {
    t.equal(exit.signal, 'SIGTERM', `bare replica ${i + 1} was killed by SIGTERM`)
  }
})
