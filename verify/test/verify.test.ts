// The bin, run as a user runs it, against real services: the example app, bare Fastify, the
// Dockerfile's CMD, and plain node:http servers that show each way a shutdown goes wrong.
import t from 'tap'
import { once } from 'node:events'
import { join } from 'node:path'
import { exampleAppEnv } from '../../test/helpers/example-app.js'
import { freePort, waitUntilAccepting } from '../../test/helpers/system.js'
import { parseArguments, resolveSettings, verify, type Progress } from '../src/index.js'
import { connects } from '../src/readiness.js'
import { formatReport } from '../src/report.js'
import { classified, repoRoot, spawnBin, verifyJson as verifyJsonIn } from './helpers.js'

/** verify --json from the repository root, with the example app's test environment. */
const verifyJson = (args: string[], { env = {} }: { env?: Record<string, string> } = {}) => verifyJsonIn(t, args, { env: exampleAppEnv(env) })

// POST /predict of 500 ms at 20 per second keeps about 10 requests in flight, inside the example
// app's replica_concurrency (10) and queue (10), so none is refused for want of a slot.
const PREDICT = ['--route', 'POST /predict', '--body', '{"input":"verify","ms":500}', '--rate', '20', '--connections', '10', '--warmup', '1000']

t.test('the example app drains: nothing lost, exit 0, within the grace period', async t => {
  const { code, report } = await verifyJson([...PREDICT, '--', process.execPath, 'dist/example-app/server.js'])
  t.equal(code, 0, JSON.stringify(report.failures))
  t.ok(report.pass)
  const requests = report.requests!
  t.equal(requests.lost, 0, 'no request lost')
  t.ok(requests.inFlightAtSignal > 0, `${requests.inFlightAtSignal} requests in flight at the signal`)
  t.ok(requests.ok >= requests.inFlightAtSignal, 'every request in flight at the signal was answered')
  t.equal(classified(requests), requests.total, `${requests.total} requests, each in one class`)
  t.match(report.exit, { code: 0, signal: null })
  t.ok(report.exit!.afterSignalMs! < 5000, `exit ${report.exit!.afterSignalMs} ms after SIGTERM`)
  t.same(report.gracePeriod, { ms: 90_000, source: 'cerebrium.toml', exceeded: false }, 'the grace period of ./cerebrium.toml')
  // Which of them the service closed is read from the kernel when verify sees each close: on a
  // loaded machine the last may be read only after the service exited, and then counts as open.
  const idle = report.idleSockets!
  t.match(idle, { opened: 3, closedBeforeSignal: 0 })
  t.ok(idle.closedByService >= 1 && idle.closedByService + idle.openAtExit === 3, `${idle.closedByService} idle sockets closed by the drain`)
  t.equal(report.readiness.mode, 'http')
  t.ok(report.readiness.notReadyAfterMs !== null && report.readiness.notReadyAfterMs >= 0, 'readiness failed after the signal')
  t.same(report.warnings, [])
  const table = formatReport(report)
  t.match(table, /^graceful-shutdown-check verify: PASS\n/)
  t.match(table, new RegExp(`\\n  answered 2xx +${requests.ok}\\n`))
  t.match(table, /\n {2}reset or cut after being sent \(LOST\) +0\n/)
  t.match(table, /\n {2}exit {9}exit code 0, \d+ ms after SIGTERM\n/)
})

t.test('the example app loading its model (MODEL_LOAD_MS): verify waits out the load on /ready, then passes', async t => {
  const startedAt = performance.now()
  const { code, report } = await verifyJson([...PREDICT, '--', process.execPath, 'dist/example-app/server.js'], { env: { MODEL_LOAD_MS: '3000' } })
  t.equal(code, 0, JSON.stringify(report.failures))
  t.equal(report.requests!.lost, 0)
  t.equal(report.readiness.mode, 'http')
  t.ok(performance.now() - startedAt > 3000, 'the load was waited for')
})

t.test('bare Fastify dies at SIGTERM: requests lost, killed by the signal, exit 1', async t => {
  const { code, report } = await verifyJson([
    '--route', 'POST /predict', '--body', '{"input":"verify","ms":1000}', '--warmup', '1500',
    '--', process.execPath, '--import', 'tsx', 'test/fixtures/bare-fastify.ts'
  ])
  t.equal(code, 1)
  t.notOk(report.pass)
  const requests = report.requests!
  t.ok(requests.inFlightAtSignal > 0, `${requests.inFlightAtSignal} in flight at the signal`)
  t.ok(requests.reset >= requests.inFlightAtSignal, `${requests.reset} cut after being sent`)
  t.equal(requests.lost, requests.reset + requests.timeout)
  t.equal(classified(requests), requests.total, `${requests.total} requests, each in one class`)
  t.match(report.exit, { code: null, signal: 'SIGTERM' })
  t.equal(report.readiness.mode, 'tcp', '/ready answered 404: started on a TCP connect')
  t.match(report.idleSockets, { opened: 3, closedByService: 0, openAtExit: 3 }, 'idle sockets still open when it died')
  t.match(report.failures, [/requests lost/, /killed by SIGTERM/])
  const table = formatReport(report)
  t.match(table, /^graceful-shutdown-check verify: FAIL\n/)
  t.match(table, new RegExp(`\\n  reset or cut after being sent \\(LOST\\) +${requests.reset}\\n`))
  t.match(table, /\n {2}FAIL: \d+ requests? lost: /)
  t.match(table, /\n {2}still open when the process died +3\n/)
})

t.test('--dockerfile runs the Dockerfile\'s CMD, which drains', async t => {
  const { code, report } = await verifyJson([...PREDICT, '--dockerfile', 'Dockerfile'])
  t.equal(code, 0, JSON.stringify(report.failures))
  t.same(report.command, ['node', 'dist/example-app/server.js'])
  t.equal(report.requests!.lost, 0)
  t.ok(report.requests!.inFlightAtSignal > 0)
  t.match(report.exit, { code: 0, signal: null })
})

t.test('--url: a service that picks its own port is targeted there', async t => {
  const port = await freePort()
  const { code, report } = await verifyJson([...PREDICT, '--url', `http://127.0.0.1:${port}`,
    '--', 'env', `PORT=${port}`, process.execPath, 'dist/example-app/server.js'])
  t.equal(code, 0, JSON.stringify(report.failures))
  t.equal(report.url, `http://127.0.0.1:${port}`)
  t.ok(report.requests!.ok > 0 && report.requests!.lost === 0, `${report.requests!.ok} answered there, none lost`)
})

t.test('a service with no GET at all (501) has no readiness route: started on a TCP connect', async t => {
  // Python's http.server answers 501 to a method it does not handle; this one handles POST only.
  const server = "require('node:http').createServer((req, res) => { res.statusCode = req.method === 'POST' ? 200 : 501; res.end() })" +
    ".listen(process.env.PORT, '127.0.0.1')"
  const { report } = await verifyJson(['--route', 'POST /', '--warmup', '500', '--idle-sockets', '0', '--start-timeout', '5000',
    '--', process.execPath, '-e', server])
  t.equal(report.readiness.mode, 'tcp')
  t.ok(report.requests!.ok > 0, `${report.requests!.ok} requests answered: the run went past the start`)
})

t.test('a service that outlives the grace period is killed, as the platform would, and fails', async t => {
  // Any HTTP service, not only Fastify: node:http that ignores SIGTERM, with 100 ms answers.
  const server = "process.on('SIGTERM', () => {}); require('node:http').createServer((req, res) => " +
    "setTimeout(() => res.end('ok'), 100)).listen(process.env.PORT, '127.0.0.1')"
  const { code, report } = await verifyJson(['--warmup', '500', '--grace-period', '1000', '--idle-sockets', '1',
    '--', process.execPath, '-e', server])
  t.equal(code, 1)
  t.equal(report.gracePeriod.exceeded, true)
  t.match(report.exit, { code: null, signal: 'SIGKILL' })
  t.ok(report.exit!.afterSignalMs! >= 1000 && report.exit!.afterSignalMs! < 3000, `killed ${report.exit!.afterSignalMs} ms after SIGTERM`)
  t.ok(report.requests!.ok > 0, 'it served until then')
  t.ok(report.failures.some(failure => /still running 1000 ms after SIGTERM.*SIGKILL sent/.test(failure)), 'the grace period is why it failed')
  t.match(formatReport(report), /\n {2}grace period 1000 ms \(--grace-period\): EXCEEDED, SIGKILL sent\n/)
})

t.test('a service that cannot start, or stops before the signal, fails with the reason', async t => {
  const missing = await verifyJson(['--', join(repoRoot, 'no-such-binary')])
  t.equal(missing.code, 1)
  t.match(missing.report.failures, [/the command could not be started: spawn .*no-such-binary ENOENT/])

  const crash = await verifyJson(['--start-timeout', '5000', '--', process.execPath, '-e', 'console.error("no database"); process.exit(3)'])
  t.equal(crash.code, 1)
  t.match(crash.report.failures, [/exited before it was ready \(code 3\)/])
  t.same(crash.report.output, ['no database'], 'with what it wrote')
  t.match(formatReport(crash.report), /\n {2}last lines of the service's output:\n {4}no database\n/)

  const early = await verifyJson(['--warmup', '5000', '--ready-path', 'none', '--', process.execPath, '-e',
    "const server = require('node:net').createServer().listen(process.env.PORT, '127.0.0.1'); setTimeout(() => process.exit(0), 300)"])
  t.equal(early.code, 1)
  t.match(early.report.failures, [/exited during the warm-up, before the signal \(code 0\)/])
})

t.test('Ctrl+C on verify takes the service with it', async t => {
  const port = await freePort()
  const service = "require('node:http').createServer((req, res) => res.end('ok')).listen(process.env.PORT, '127.0.0.1')"
  const child = spawnBin(t, ['verify', '--port', String(port), '--warmup', '60000', '--ready-path', 'none', '--', process.execPath, '-e', service])
  await waitUntilAccepting(port, { attempts: 200, intervalMs: 50 })
  child.kill('SIGINT')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 130, 'exit 130, as for any program stopped by Ctrl+C')
  t.equal(await connects({ host: '127.0.0.1', port }, 1000), false, 'the service is gone too')
})

t.test('verify() stops when its signal aborts: the service is gone, and it rejects with the reason', async t => {
  const port = await freePort()
  const service = "require('node:http').createServer((req, res) => setTimeout(() => res.end('ok'), 50)).listen(process.env.PORT, '127.0.0.1')"
  const options = resolveSettings(parseArguments(['--port', String(port), '--warmup', '60000', '--ready-path', 'none', '--idle-sockets', '1',
    '--', process.execPath, '-e', service])!)
  const controller = new AbortController()
  const progress: Progress[] = []
  let loading!: () => void
  const loaded = new Promise<void>(resolve => { loading = resolve })
  const run = verify(options, {
    signal: controller.signal,
    onProgress: update => {
      progress.push(update)
      if (update.phase === 'warm-up' && update.ok > 0) loading()
    }
  })
  await loaded
  controller.abort(new Error('enough'))
  await t.rejects(run, { message: 'enough' })
  t.equal(await connects({ host: '127.0.0.1', port }, 1000), false, 'the service is gone')
  t.ok(progress.every((update, i) => i === 0 || update.sent >= progress[i - 1]!.sent), 'requests sent only grow')
})
