// `fastify-graceful-termination verify`, run as a user runs it: the bin, in a child process,
// against real services: the example app, bare Fastify, the Dockerfile's CMD, and a plain
// node:http server that ignores SIGTERM.
import t from 'tap'
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InvalidOptionError, UsageError } from '../lib/errors.js'
import { parseArguments } from '../lib/verify/arguments.js'
import { runningFromStat } from '../lib/verify/child.js'
import { commandFromDockerfile } from '../lib/verify/dockerfile.js'
import { complete } from '../lib/verify/idle-sockets.js'
import { connects } from '../lib/verify/readiness.js'
import { classify, Load, noRequests, type RequestCounts } from '../lib/verify/load.js'
import { progressLine } from '../lib/verify/progress.js'
import { formatReport, judge, type Report } from '../lib/verify/report.js'
import { verify, type Progress } from '../lib/verify/run.js'
import { typeScriptArgs } from './helpers/app-process.js'
import { exampleAppEnv } from './helpers/example-app.js'
import { freePort, waitUntilAccepting } from './helpers/system.js'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
// The sources, so that the coverage of lib/verify counts; test/package.test.ts runs the built bin.
const bin = typeScriptArgs(join(repoRoot, 'lib', 'bin.ts'))

interface BinRun { code: number | null, stdout: string, stderr: string }

async function runBin (args: string[], { cwd = repoRoot, env = {} }: { cwd?: string, env?: Record<string, string> } = {}): Promise<BinRun> {
  const child = spawn(process.execPath, [...bin, ...args], { cwd, env: exampleAppEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

/** Runs verify with --json; the report, and the bin's exit code. */
async function verifyJson (args: string[], options: { cwd?: string, env?: Record<string, string> } = {}): Promise<{ code: number | null, report: Report }> {
  const { code, stdout, stderr } = await runBin(['verify', '--json', ...args], options)
  let report: Report
  try {
    report = JSON.parse(stdout)
  } catch {
    throw new Error(`verify printed no JSON report (exit ${code})\nstdout: ${stdout}\nstderr: ${stderr}`)
  }
  return { code, report }
}

/** Every request is in exactly one class: the classes add up to the total. */
function classified (requests: RequestCounts): number {
  const statuses = Object.values(requests.status).reduce((sum, n) => sum + n, 0)
  return requests.ok + statuses + requests.refused503 + requests.connectionRefused + requests.reset + requests.timeout
}

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
  t.match(table, /^fastify-graceful-termination verify: PASS\n/)
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
  t.match(table, /^fastify-graceful-termination verify: FAIL\n/)
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

t.test('bad usage exits 2 naming the option and the value', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['--rate', 'fast', '--', 'node', 's.js'], /option --rate must be .*, received "fast"/],
    [['--route', 'predict', '--', 'node', 's.js'], /option --route must be a method and a path.*, received "predict"/],
    [['--signal', 'SIGNOPE', '--', 'node', 's.js'], /option --signal must be .*, received "SIGNOPE"/],
    [['--grace-period', '30s', '--', 'node', 's.js'], /option --grace-period must be an integer .*, received "30s"/],
    [['--ready-path', 'ready', '--', 'node', 's.js'], /option --ready-path must be a path starting with "\/" or none, received "ready"/],
    [['--url', 'https://example.com', '--', 'node', 's.js'], /option --url must be an http:\/\/ URL.*, received "https:\/\/example.com"/],
    [['--port', '8000', '--url', 'http://127.0.0.1:8000', '--', 'node', 's.js'], /--port "8000" and --url .* exclude each other/],
    [['--header', 'no colon', '--', 'node', 's.js'], /option --header must be a header as "name: value", received "no colon"/],
    [['--rate', '5'], /no command to run/],
    [['--dockerfile', 'Dockerfile', '--', 'node', 's.js'], /not both/],
    [['--dockerfile', 'nowhere/Dockerfile'], /--dockerfile "nowhere\/Dockerfile" cannot be read/],
    [['node', 's.js'], /unexpected argument "node": the service's command goes after --/],
    [['--frobnicate', '--', 'node', 's.js'], /Unknown option '--frobnicate'/]
  ]
  for (const [args, message] of cases) {
    t.throws(() => parseArguments(args, { cwd: repoRoot }), message, args.join(' '))
  }
  t.throws(() => parseArguments(['--rate=-1', '--', 'x']), InvalidOptionError)
  t.throws(() => parseArguments(['--rate', '-1', '--', 'x']), UsageError)
  t.throws(() => parseArguments(['--']), UsageError)

  // The bin itself: the message on stderr, exit 2, nothing started.
  const [badValue, badCommand] = await Promise.all([
    runBin(['verify', '--connections', '0', '--', 'node', 'never-started.js']),
    runBin(['deploy'])
  ])
  t.equal(badValue.code, 2)
  t.match(badValue.stderr, /fastify-graceful-termination: option --connections must be an integer from 1 to 10000, received "0"/)
  t.equal(badValue.stdout, '')
  t.equal(badCommand.code, 2)
  t.match(badCommand.stderr, /unknown command "deploy"/)

  const [help, topLevelHelp, nothing] = await Promise.all([runBin(['verify', '--help']), runBin(['--help']), runBin([])])
  for (const [run, code] of [[help, 0], [topLevelHelp, 0], [nothing, 2]] as const) {
    t.equal(run.code, code)
    t.match(run.stdout, /Usage: fastify-graceful-termination verify .* -- <command\.\.\.>/)
  }
})

t.test('defaults: grace period from ./cerebrium.toml, else 30 s; timeout the grace period', async t => {
  const withToml = parseArguments(['--', 'node', 's.js'], { cwd: repoRoot })!
  t.match(withToml, { gracePeriod: 90_000, gracePeriodSource: 'cerebrium.toml', timeout: 90_000, method: 'GET', path: '/', readyPath: '/ready' })
  const dir = t.testdir({ 'cerebrium.toml': '[cerebrium.scaling]\nresponse_grace_period = 45\n' })
  t.match(parseArguments(['--', 'node', 's.js'], { cwd: dir }), { gracePeriod: 45_000 })
  t.match(parseArguments(['--', 'node', 's.js'], { cwd: t.testdir({}) }), { gracePeriod: 30_000, gracePeriodSource: 'default' })
  t.match(parseArguments(['--grace-period', '5000', '--ready-path', 'none', '--', 'node', 's.js'], { cwd: repoRoot }),
    { gracePeriod: 5000, gracePeriodSource: '--grace-period', timeout: 5000, readyPath: false })
})

t.test('the Dockerfile\'s command: exec form, shell form, ENTRYPOINT with CMD, ENV', async t => {
  const dockerfile = (text: string) => commandFromDockerfile(join(t.testdir({ Dockerfile: text }), 'Dockerfile'))
  t.match(dockerfile('FROM node AS build\nCMD ["npm", "test"]\nFROM node\nENV NODE_ENV=production A="two words"\nENV LEGACY some value\n' +
    'CMD ["node", "server.js"]\n'),
  { command: ['node', 'server.js'], shellForm: false, env: { NODE_ENV: 'production', A: 'two words', LEGACY: 'some value' } })
  t.match(dockerfile('FROM node\nCMD node \\\n  server.js\n'), { command: ['/bin/sh', '-c', /^node\s+server\.js$/], shellForm: true })
  t.match(dockerfile('FROM node\nENTRYPOINT ["node"]\nCMD ["server.js"]\n'), { command: ['node', 'server.js'] })
  t.match(dockerfile('FROM node\nENTRYPOINT node server.js\nCMD ["ignored"]\n'), { command: ['/bin/sh', '-c', 'node server.js'] })
  t.throws(() => dockerfile('FROM node AS build\nCMD ["x"]\nFROM node\nRUN true\n'), /no CMD or ENTRYPOINT/)
})

t.test('each way a request ends is in one class', async t => {
  t.equal(classify({ kind: 'response', status: 200 }), 'ok')
  t.equal(classify({ kind: 'response', status: 204 }), 'ok')
  t.equal(classify({ kind: 'response', status: 503 }), 'refused503')
  t.equal(classify({ kind: 'response', status: 502 }), 'status')
  t.equal(classify({ kind: 'error', code: 'ECONNREFUSED', connected: false }), 'connectionRefused')
  t.equal(classify({ kind: 'error', code: 'socket hang up', connected: true }), 'reset')
  t.equal(classify({ kind: 'error', code: 'ECONNRESET', connected: true }), 'reset')
  t.equal(classify({ kind: 'timeout' }), 'timeout')
})

t.test('headers and a body that is not JSON', async t => {
  t.match(parseArguments(['--header', 'X-Api-Key: secret', '--header', 'accept:text/plain', '--', 'node', 's.js']),
    { headers: { 'x-api-key': 'secret', accept: 'text/plain' } })
})

t.test('an idle socket knows when its response is whole', async t => {
  const head = 'HTTP/1.1 200 OK\r\n'
  t.equal(complete(`${head}content-length: 2\r\n\r\nok`), true)
  t.equal(complete(`${head}content-length: 2\r\n\r\no`), false, 'half the body')
  t.equal(complete(`${head}transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n`), true)
  t.equal(complete(`${head}transfer-encoding: chunked\r\n\r\n2\r\nok\r\n`), false, 'no last chunk yet')
  t.equal(complete(`${head}connection: close\r\n\r\nok`), false, 'unframed: ends with the connection')
  t.equal(complete(head), false, 'no end of the head')
})

t.test('the load counts each answer in its class: 2xx, another status, cut mid-body, timed out', async t => {
  // The server decides each answer by arrival order, and keeps its own tally to compare with.
  const served = { ok: 0, teapot: 0, cut: 0, hung: 0 }
  const contentTypes = new Set<string | undefined>()
  let arrived = 0
  const server = http.createServer((request, response) => {
    contentTypes.add(request.headers['content-type'])
    request.resume()
    switch (arrived++ % 4) {
      case 0: served.ok++; response.end('ok'); break
      case 1: served.teapot++; response.writeHead(418).end(); break
      case 2: served.cut++; response.writeHead(200, { 'content-length': 10 }).write('half', () => response.destroy()); break
      default: served.hung++
    }
  })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const { port } = server.address() as net.AddressInfo

  const load = new Load({ host: '127.0.0.1', port }, {
    method: 'POST', path: '/', body: 'not json', headers: {}, rate: 40, connections: 20, timeout: 300
  })
  await new Promise(resolve => setTimeout(resolve, 500))
  const counts = await load.stop()
  t.ok(arrived >= 8, `${arrived} requests arrived`)
  t.equal(counts.total, arrived, 'every request sent arrived')
  t.equal(counts.ok, served.ok)
  t.same(counts.status, { 418: served.teapot })
  t.equal(counts.reset, served.cut, 'a body cut in the middle is lost')
  t.equal(counts.timeout, served.hung)
  t.equal(counts.lost, served.cut + served.hung)
  t.same([...contentTypes], ['text/plain; charset=utf-8'], 'a body that does not parse as JSON is sent as text')
})

t.test('the progress line is rewritten in place, cut to the terminal width', async t => {
  const calls: string[] = []
  const terminal = {
    columns: 40,
    cursorTo: (x: number) => { calls.push(`cursorTo ${x}`); return true },
    clearLine: (dir: number) => { calls.push(`clearLine ${dir}`); return true },
    write: (text: string) => { calls.push(`write ${text}`); return true }
  } as unknown as NodeJS.WriteStream
  const line = progressLine(terminal)
  line.update({ phase: 'draining', elapsedMs: 1500, sent: 30, ok: 20, inFlight: 9, lost: 1 })
  line.clear()
  t.same(calls, [
    'cursorTo 0',
    'write ' + 'verify: 1.5 s, draining: 30 sent, 20 answered 2xx, 9 in flight, 1 lost'.slice(0, 39),
    'clearLine 1',
    'cursorTo 0',
    'clearLine 0'
  ])
})

t.test('verify() reports its progress while it runs', async t => {
  const service = "require('node:http').createServer((req, res) => setTimeout(() => res.end('ok'), 50)).listen(process.env.PORT, '127.0.0.1')"
  const progress: Progress[] = []
  const report = await verify(parseArguments(['--warmup', '800', '--ready-path', 'none', '--idle-sockets', '0', '--grace-period', '2000',
    '--', process.execPath, '-e', service])!, { onProgress: update => progress.push(update) })
  t.ok(progress.length >= 2, `${progress.length} updates`)
  t.ok(progress.every((update, i) => i === 0 || update.sent >= progress[i - 1]!.sent), 'requests sent only grow')
  t.ok(progress.some(update => update.phase === 'warm-up' && update.sent > 0))
  t.ok(progress.at(-1)!.sent <= report.requests!.total)
})

t.test('the verdict: what fails a run, and what only makes it prove less', async t => {
  const dir = t.testdir({ Dockerfile: 'FROM node\nCMD node server.js\n' })
  const options = parseArguments(['--dockerfile', 'Dockerfile', '--grace-period', '5000'], { cwd: dir })!
  const requests: RequestCounts = { ...noRequests(), total: 10, status: { 404: 10 }, sentAfterSignal: 2 }
  const report = judge(options, {
    url: 'http://127.0.0.1:1',
    pid: 1,
    startFailure: undefined,
    readinessMode: 'http',
    exit: { code: 3, signal: null, afterSignalMs: 20 },
    killedAfterGracePeriod: false,
    signalled: true,
    requests,
    idleSockets: { opened: 1, closedBeforeSignal: 0, closedByService: 1, openAtExit: 0 },
    readiness: [{ atMs: -500, answer: '200' }],
    output: ['bye']
  })
  t.equal(report.pass, false)
  t.same(report.failures, ['exited with code 3'])
  t.match(report.warnings, [
    /no request was in flight at the signal/,
    /no request was answered 2xx/,
    /\/ready never stopped answering 2xx before the exit/,
    /shell form/
  ])
  t.same(report.output, ['bye'], 'a failed run keeps what the service wrote')
  t.match(formatReport(report), /\n {2}answered 404 +10\n/)
})

t.test('Ctrl+C on verify takes the service with it', async t => {
  const port = await freePort()
  const service = "require('node:http').createServer((req, res) => res.end('ok')).listen(process.env.PORT, '127.0.0.1')"
  const child = spawn(process.execPath, [...bin, 'verify', '--port', String(port), '--warmup', '60000', '--ready-path', 'none',
    '--', process.execPath, '-e', service], { cwd: repoRoot, stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  await waitUntilAccepting(port, { attempts: 200, intervalMs: 50 })
  child.kill('SIGINT')
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 130, 'exit 130, as for any program stopped by Ctrl+C')
  t.equal(await connects({ host: '127.0.0.1', port }, 1000), false, 'the service is gone too')
})

t.test('a process the kernel is closing down is not alive, even while its state still reads R', async t => {
  // Real lines of /proc/<pid>/stat; 0x400100 and 0x400104 differ in PF_EXITING (0x4) alone.
  const stat = (name: string, state: string, flags: number): string =>
    `2462 (${name}) ${state} 2401 2462 2462 0 -1 ${flags} 3171 0 0 0 9 2 0 0 20 0 11 0 1402 1148813312 12616`
  t.equal(runningFromStat(stat('node', 'S', 0x400100)), true, 'sleeping: alive')
  t.equal(runningFromStat(stat('node', 'R', 0x400104)), false, 'running, but exiting: its sockets are the kernel\'s to close')
  t.equal(runningFromStat(stat('node', 'Z', 0x400104)), false, 'a zombie')
  t.equal(runningFromStat(stat('my (odd) name', 'R', 0x400100)), true, 'a name with spaces and parentheses')
})
