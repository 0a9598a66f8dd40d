// The parts of a run, each on its own: how a request is classed, the load against a real
// server, an idle socket's framing, the progress line, the kernel's word on a dying process, the verdict.
import t from 'tap'
import http from 'node:http'
import type net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { judge, parseArguments, resolveSettings, type RequestCounts } from '../src/index.js'
import { complete } from '../src/idle-sockets.js'
import { classify, Load, noRequests } from '../src/load.js'
import { progressLine } from '../src/progress.js'
import { formatReport } from '../src/report.js'
import { runningFromStat } from '../src/service.js'
import { targetFor } from '../src/target.js'

t.test('each way a request ends is in one class', async t => {
  t.equal(classify({ kind: 'response', status: 200 }), 'ok')
  t.equal(classify({ kind: 'response', status: 204 }), 'ok')
  t.equal(classify({ kind: 'response', status: 503 }), 'refused503')
  t.equal(classify({ kind: 'response', status: 502 }), 'status')
  t.equal(classify({ kind: 'error', code: 'ECONNREFUSED', connected: false }), 'connectionRefused')
  t.equal(classify({ kind: 'error', code: 'socket hang up', connected: true }), 'reset')
  t.equal(classify({ kind: 'error', code: 'ECONNRESET', connected: true }), 'reset')
  t.equal(classify({ kind: 'timeout' }), 'timeout')
  t.equal(classify({ kind: 'stream-refused' }), 'streamRefused')
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

  const load = new Load(targetFor(new URL(`http://127.0.0.1:${port}`)), {
    method: 'POST', path: '/', body: 'not json', headers: {}, rate: 40, connections: 20, timeout: 300
  })
  // The load is open-loop: it sends on schedule for as long as it runs, whatever the answers.
  await sleep(500)
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

t.test('the verdict: what fails a run, and what only makes it prove less', async t => {
  const dir = t.testdir({ Dockerfile: 'FROM node\nCMD node server.js\n' })
  const options = resolveSettings(parseArguments(['--dockerfile', 'Dockerfile', '--grace-period', '5000'])!, { cwd: dir })
  const requests: RequestCounts = { ...noRequests(), total: 10, status: { 404: 10 }, sentAfterSignal: 2 }
  const report = judge(options, {
    url: 'http://127.0.0.1:1',
    protocol: 'HTTP/1.1',
    container: undefined,
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

t.test('a process the kernel is closing down is not alive, even while its state still reads R', async t => {
  // Real lines of /proc/<pid>/stat; 0x400100 and 0x400104 differ in PF_EXITING (0x4) alone.
  const stat = (name: string, state: string, flags: number): string =>
    `2462 (${name}) ${state} 2401 2462 2462 0 -1 ${flags} 3171 0 0 0 9 2 0 0 20 0 11 0 1402 1148813312 12616`
  t.equal(runningFromStat(stat('node', 'S', 0x400100)), true, 'sleeping: alive')
  t.equal(runningFromStat(stat('node', 'R', 0x400104)), false, 'running, but exiting: its sockets are the kernel\'s to close')
  t.equal(runningFromStat(stat('node', 'Z', 0x400104)), false, 'a zombie')
  t.equal(runningFromStat(stat('my (odd) name', 'R', 0x400100)), true, 'a name with spaces and parentheses')
})

t.test('the verdict on a container: the exit code tells the signal, the grace period is whole seconds', async t => {
  const dir = t.testdir({ Dockerfile: 'FROM node\nEXPOSE 8000\nCMD ["node", "server.js"]\n' })
  const options = resolveSettings(parseArguments(['--dockerfile', 'Dockerfile', '--engine', 'podman', '--grace-period', '1500'])!, { cwd: dir })
  const report = judge(options, {
    url: 'http://127.0.0.1:1',
    protocol: 'HTTP/1.1',
    container: { engine: 'podman', image: 'graceful-shutdown-check:0', buildMs: 1000 },
    pid: 1,
    startFailure: undefined,
    readinessMode: 'tcp',
    exit: { code: 143, signal: null, afterSignalMs: 20 },
    killedAfterGracePeriod: false,
    signalled: true,
    requests: { ...noRequests(), total: 1, ok: 1, inFlightAtSignal: 1 },
    idleSockets: { opened: 0, closedBeforeSignal: 0, closedByService: 0, openAtExit: 0 },
    readiness: [],
    output: ['the last line']
  })
  t.same(report.failures, ['exited with code 143 (128 + SIGTERM: the signal ended it)'])
  t.same(report.warnings, ['the engine\'s stop takes whole seconds: the grace period was 2 s, not 1500 ms'])
  t.match(report.gracePeriod, { ms: 2000 })
  t.same(report.output, ['the last line'], 'a container\'s last log lines are kept, passed or failed')
  const table = formatReport(report)
  t.match(table, /\n {2}container {4}graceful-shutdown-check:0, built from Dockerfile by podman in 1\.0 s\n {15}running node server\.js\n/)
  t.match(table, /\n {2}exit {9}exit code 143, 20 ms after SIGTERM \(podman stop\)\n/)
  t.match(table, /\n {2}last lines of the container's log:\n {4}the last line\n/)
})
