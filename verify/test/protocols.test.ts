// HTTPS and HTTP/2 targets, against a node:https or node:http2 service that drains on SIGTERM
// or dies of it: TLS that the service terminates itself, h2 by ALPN, h2c with prior knowledge.
import t from 'tap'
import { freePort } from '../../test/helpers/system.js'
import { formatReport } from '../src/report.js'
import { classified, fixture, verifyJson } from './helpers.js'

const CERT = fixture('tls/cert.pem')

/** verify against the fixture service on a port of its own, with `env` for it. */
async function check (args: string[], env: Record<string, string>, scheme: 'http' | 'https' = 'https') {
  const port = await freePort()
  return await verifyJson(t, ['--url', `${scheme}://localhost:${port}`, '--rate', '20', '--warmup', '800', ...args, '--', process.execPath, fixture('service.mjs')],
    { env: { ...process.env, PORT: String(port), ...env } })
}

// Over HTTP/1.1 the fixture closes the connections left once nothing is in flight: on one
// connection (--connections 1) the load's is closed by the Connection: close of its last response
// first, so no request of the load races that close, which is the plugin's concern, not this test's.
// Requests of 300 ms every 250 ms keep the one connection busy: one always in flight.
const HTTPS_LOAD = ['--route', 'GET /work?ms=300', '--rate', '4', '--connections', '1']

t.test('HTTPS, the service terminating TLS itself: trusted through NODE_EXTRA_CA_CERTS, it drains', async t => {
  const { code, report } = await check(HTTPS_LOAD, { PROTOCOL: 'https', DRAIN: '1', NODE_EXTRA_CA_CERTS: CERT })
  t.equal(code, 0, JSON.stringify(report.failures))
  t.equal(report.protocol, 'HTTP/1.1')
  t.match(report.url, /^https:\/\/localhost:\d+$/)
  t.equal(report.requests!.lost, 0)
  t.ok(report.requests!.inFlightAtSignal > 0, `${report.requests!.inFlightAtSignal} in flight at the signal`)
  t.equal(report.readiness.mode, 'http', 'its /ready answered 200 over TLS')
  t.ok(report.readiness.notReadyAfterMs !== null && report.readiness.notReadyAfterMs >= 0, 'not ready once draining')
  t.match(report.idleSockets, { opened: 3, closedBeforeSignal: 0 })
  t.ok(report.idleSockets!.closedByService > 0, 'idle TLS connections closed by the service')
})

t.test('HTTPS with a certificate verify does not trust: not ready, saying why; --insecure accepts it', async t => {
  const untrusted = await check(['--start-timeout', '1500'], { PROTOCOL: 'https', DRAIN: '1', NODE_EXTRA_CA_CERTS: '' })
  t.equal(untrusted.code, 1)
  t.match(untrusted.report.failures, [/was not ready \(\/ready: TLS [A-Z_]+\) within --start-timeout 1500 ms/])
  const insecure = await check(['--insecure', ...HTTPS_LOAD], { PROTOCOL: 'https', DRAIN: '1' })
  t.equal(insecure.code, 0, JSON.stringify(insecure.report.failures))
  t.ok(insecure.report.requests!.ok > 0)
})

t.test('h2 over TLS, negotiated by ALPN: streams refused while draining are retryable, nothing lost', async t => {
  const { code, report } = await check(['--http2', '--insecure', '--route', 'GET /work?ms=300'], { PROTOCOL: 'h2', DRAIN: '1', REFUSE_MS: '400' })
  t.equal(code, 0, JSON.stringify(report.failures))
  t.equal(report.protocol, 'h2')
  const requests = report.requests!
  t.equal(requests.lost, 0)
  t.ok(requests.inFlightAtSignal > 0, `${requests.inFlightAtSignal} streams in flight at the signal`)
  t.ok(requests.streamRefused > 0, `${requests.streamRefused} streams refused with REFUSED_STREAM`)
  t.equal(classified(requests), requests.total)
  t.match(report.idleSockets, { opened: 3, closedBeforeSignal: 0 })
  t.ok(report.idleSockets!.closedByService > 0, 'idle sessions closed by the service\'s GOAWAY')
  const table = formatReport(report)
  t.match(table, /^ {15}pid \d+, https:\/\/localhost:\d+ \(h2\)$/m)
  t.match(table, new RegExp(`\\n  HTTP/2 stream refused \\(retryable\\) +${requests.streamRefused}\\n`))
})

t.test('h2c, HTTP/2 with prior knowledge: a service that drains passes, one that dies at SIGTERM loses its streams', async t => {
  const [drains, dies] = await Promise.all([
    check(['--http2', '--route', 'POST /work?ms=300', '--body', '{"input":"h2c"}'], { PROTOCOL: 'h2c', DRAIN: '1' }, 'http'),
    check(['--http2', '--route', 'GET /work?ms=1000', '--warmup', '1500'], { PROTOCOL: 'h2c' }, 'http')
  ])
  t.equal(drains.code, 0, JSON.stringify(drains.report.failures))
  t.equal(drains.report.protocol, 'h2c')
  t.equal(drains.report.requests!.lost, 0)
  t.ok(drains.report.requests!.ok > 0)

  t.equal(dies.code, 1)
  const requests = dies.report.requests!
  t.ok(requests.inFlightAtSignal > 0, `${requests.inFlightAtSignal} streams in flight`)
  // A stream whose response was being written as the signal landed may still arrive whole.
  t.ok(requests.reset > 0 && requests.lost === requests.reset + requests.timeout, `${requests.reset} cut after being sent`)
  t.equal(requests.streamRefused, 0, 'a service that dies refuses no stream: it sends no GOAWAY')
  t.equal(classified(requests), requests.total)
  t.match(dies.report.exit, { signal: 'SIGTERM' })
  t.match(dies.report.idleSockets, { closedByService: 0 }, 'no GOAWAY from a service that died')
})

t.test('h2c streams that never end time out, and are cancelled: the service is not left serving them', async t => {
  const { code, report } = await check(['--http2', '--route', 'GET /hang', '--timeout', '600', '--grace-period', '1500', '--idle-sockets', '0'],
    { PROTOCOL: 'h2c', DRAIN: '1' }, 'http')
  t.equal(code, 1)
  const requests = report.requests!
  t.ok(requests.timeout > 0 && requests.timeout === requests.lost - requests.reset, `${requests.timeout} timed out`)
  t.match(report.exit, { code: 0 }, 'its drain ended once the streams verify gave up on were cancelled')
  t.equal(report.gracePeriod.exceeded, false)
})

t.test('--http2 against a service that speaks HTTP/1.1 only: not ready, "not HTTP/2"', async t => {
  const { code, report } = await check(['--http2', '--start-timeout', '1500'], { PROTOCOL: 'http', DRAIN: '1' }, 'http')
  t.equal(code, 1)
  t.match(report.failures, [/was not ready \(\/ready: not HTTP\/2\) within --start-timeout 1500 ms/])
})
