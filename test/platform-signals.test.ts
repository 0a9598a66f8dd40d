// Each platform's defaults on the signal path, for real: a spawned app given the platform's
// variables, a real signal, real TCP. Kubernetes keeps routing after SIGTERM; Cloud Run and
// Fly.io send SIGKILL on their own clock, which the drain must beat.
import t from 'tap'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { hasMessage, requestFor, startApp, startCommand, type AppProcess, type Exit } from './helpers/app-process.js'
import { exampleAppEnv } from './helpers/example-app.js'
import { failure, openConnections, request, type Response } from './helpers/http.js'

const POD = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }

/** The exit, or 'still running' once boundMs has passed: the platform's SIGKILL would have come. */
async function exitWithin (app: AppProcess, boundMs: number): Promise<Exit | 'still running'> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<'still running'>(resolve => { timer = setTimeout(() => resolve('still running'), boundMs) })
  try {
    return await Promise.race([app.exited, bound])
  } finally {
    clearTimeout(timer)
  }
}

/** Requests every intervalMs, each on a new connection, until stop() is called; all their outcomes. */
function everyInterval (intervalMs: number, send: () => Promise<Response>) {
  const outcomes: Array<Promise<number | string>> = []
  const timer = setInterval(() => {
    outcomes.push(send().then(response => response.status, (err: NodeJS.ErrnoException) => err.code ?? err.message))
  }, intervalMs)
  return {
    stop: async () => {
      clearInterval(timer)
      return await Promise.all(outcomes)
    }
  }
}

t.test('Kubernetes: new connections are served after SIGTERM while they come; probes do not hold the pod; then it stops at once', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: POD })

  // The kubelet probes every pod straight at its address, terminating ones too, on a new
  // connection each time; its User-Agent is kube-probe/<version>, whatever the path.
  const probes = [
    everyInterval(100, () => request(app.port, '/ready')),
    everyInterval(100, () => request(app.port, '/health')),
    everyInterval(100, () => request(app.port, '/slow?ms=1', { headers: { 'user-agent': 'kube-probe/1.31' } }))
  ]
  t.teardown(() => Promise.all(probes.map(probe => probe.stop())))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  const signalledAt = performance.now()

  // What kube-proxy still sends here while the endpoint's removal propagates.
  const traffic = everyInterval(50, () => request(app.port, '/slow?ms=20'))
  await sleep(2500)
  const routed = await traffic.stop()
  const trafficEndedAt = performance.now()
  t.ok(routed.length >= 30, `${routed.length} requests sent on new connections after SIGTERM`)
  t.same(routed.filter(status => status !== 200), [], 'every one was accepted and served')

  const stopped = await app.waitForLog(hasMessage(/stopped accepting connections/))
  const stoppedAfterTrafficMs = performance.now() - trafficEndedAt
  t.match(stopped, { routing: 'stopped' })
  t.ok(Number(stopped.newConnections) >= routed.length - 2, `counted the routed connections, not the probes (${stopped.newConnections})`)
  t.ok(stoppedAfterTrafficMs < 2500, `stopped accepting within the quiet second of the last one (${stoppedAfterTrafficMs.toFixed(0)} ms), though probes kept coming`)
  t.equal(await failure(request(app.port, '/ready')), 'ECONNREFUSED', 'then a new connection is refused')

  const exit = await app.exited
  t.equal(exit.code, 0)
  t.comment(`SIGTERM to exit: ${(exit.at - signalledAt).toFixed(0)} ms, traffic for 2500 ms of it`)
  const [ready] = await Promise.all(probes.map(probe => probe.stop()))
  t.ok(ready!.includes(503), 'readiness answered 503 to the probes while the pod drained')
  t.notOk(ready!.includes(200), 'and never 200')
  t.match(app.logs.find(hasMessage(/^running on/)), {
    msg: 'running on kubernetes (KUBERNETES_SERVICE_HOST is set)',
    gracePeriod: { value: 10_000, source: 'option' },
    readinessDelay: { value: { quietPeriod: 1000, minimum: 1000, maximum: 5000 }, source: 'kubernetes: routing stops after the signal' }
  }, 'the start-up line named the platform and the watch')
})

t.test('Kubernetes: requests on connections opened before SIGTERM are served but are no sign of routing', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: POD })
  const open = await openConnections(t, app.port, 5)
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  const served = await Promise.all(Array.from({ length: 5 }, () => request(app.port, '/slow?ms=10', { agent: open })))
  t.same(served.map(response => [response.status, response.headers.connection]), Array(5).fill([200, 'close']))
  const stopped = await app.waitForLog(hasMessage(/stopped accepting connections/))
  t.match(stopped, { routing: 'stopped', newConnections: 0 })
  t.ok(Number(stopped.elapsedMs) >= 1000 && Number(stopped.elapsedMs) < 2500, `at the minimum (${stopped.elapsedMs} ms)`)
  t.equal((await app.exited).code, 0)
})

t.test('Kubernetes: an explicit readinessDelay of 0 wins: refused at once', async t => {
  const app = await startApp(t, { options: { readinessDelay: 0 }, env: POD })
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/stopped accepting connections/))
  t.equal(await failure(request(app.port, '/slow?ms=1')), 'ECONNREFUSED')
  t.equal((await app.exited).code, 0)
})

const exampleApp = fileURLToPath(new URL('../dist/example-app/server.js', import.meta.url))

t.test('Cloud Run: the example app reads 90 s from cerebrium.toml, and still exits before Cloud Run\'s SIGKILL at 10 s', async t => {
  const app = await startCommand(t, process.execPath, [exampleApp], { env: exampleAppEnv({ K_SERVICE: 'inference', K_REVISION: 'inference-00002' }) })
  const warning = await app.waitForLog(hasMessage(/^gracePeriod is 90000 ms/))
  t.match(warning.msg, /from cerebrium\.toml cerebrium\.scaling\.response_grace_period\) but Cloud Run's fixed 10 s sends SIGKILL 10000 ms after the stop signal/)

  const body = JSON.stringify({ input: 'long', ms: 15_000 })
  const long = new Promise<string>(resolve => {
    const req = http.request({ host: '127.0.0.1', port: app.port, path: '/predict', method: 'POST', headers: { 'content-type': 'application/json' } },
      response => { response.resume().on('end', () => resolve(`answered ${response.statusCode}`)).on('error', () => resolve('cut')) })
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
    req.end(body)
  })
  await app.waitForLog(requestFor('/predict'))
  const signalledAt = performance.now()
  app.kill('SIGTERM')
  const exit = await exitWithin(app, 10_000)
  t.not(exit, 'still running', 'exited before Cloud Run sends SIGKILL')
  if (exit === 'still running') return
  t.equal(exit.code, 1, 'exit 1: a request was cut')
  const exitMs = exit.at - signalledAt
  t.ok(exitMs < 10_000, `SIGTERM to exit: ${exitMs.toFixed(0)} ms`)
  t.ok(app.logs.some(line => line.msg === 'cut request still in flight at the drain deadline' && line.url === '/predict'), 'the cut request is logged')
  t.ok(app.logs.some(hasMessage(/exiting with code 1/)), 'and why the exit is 1')
  t.match(await long, /ECONNRESET|cut|socket hang up/)
})

t.test('Fly.io: SIGINT, and a drain planned on the default kill_timeout of 5 s', async t => {
  const app = await startApp(t, { env: { FLY_APP_NAME: 'api', FLY_MACHINE_ID: '148ed' } })
  const inFlight = request(app.port, '/slow?ms=8000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=8000'))
  const signalledAt = performance.now()
  app.kill('SIGINT')
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.match(started, { reason: 'SIGINT', gracePeriod: 5000, drainDeadlineMs: 4000 })
  const exit = await exitWithin(app, 5000)
  t.not(exit, 'still running', 'exited before Fly.io sends SIGKILL')
  if (exit === 'still running') return
  t.equal(exit.code, 1)
  t.comment(`SIGINT to exit: ${(exit.at - signalledAt).toFixed(0)} ms`)
  t.equal(await inFlight, 'cut')
})
