// --engine podman against the real container: the project's own Dockerfile, built, run and
// stopped by the engine, drains; the same image with `npm start` as its command loses requests.
// The base image is made here once (no registry is reachable) and kept in podman's store.
import t from 'tap'
import { findBinary } from '../../../test/helpers/system.js'
import { classified, repoRoot, verifyJson } from '../helpers.js'
import { ensureBaseImage, podmanConfig } from './podman.js'

const missing = ['podman', 'runc', 'debootstrap'].filter(name => findBinary(name) === undefined)
const skip = missing.length > 0 && `${missing.join(', ')} not installed (apt-get install podman runc debootstrap; .ci/run does it)`

// POST /predict of 500 ms at 20 per second: about 10 in flight at the stop, inside the example app's
// replica_concurrency (10) and queue (10). The grace period is cerebrium.toml's, 90 s.
const PREDICT = ['--route', 'POST /predict', '--body', '{"input":"container","ms":500}', '--warmup', '1500', '--dockerfile', 'Dockerfile', '--engine', 'podman']

t.test('the container of the project\'s Dockerfile, and the same image started with npm start', { skip }, async t => {
  const env = await podmanConfig(t.testdir({}))
  const startedAt = performance.now()
  const made = await ensureBaseImage(env)
  t.comment(`base image ${made ? 'made' : 'found in podman\'s store'} in ${Math.round(performance.now() - startedAt)} ms`)

  t.test('the Dockerfile\'s CMD, node as PID 1: drains, nothing lost, exit 0', async t => {
    const startedAt = performance.now()
    const { code, report } = await verifyJson(t, PREDICT, { cwd: repoRoot, env })
    t.comment(`verify took ${Math.round(performance.now() - startedAt)} ms, the build ${report.container?.buildMs} ms`)
    t.equal(code, 0, JSON.stringify(report.failures))
    t.match(report.container, { engine: 'podman', image: /^graceful-shutdown-check:[0-9a-f]{12}$/ })
    t.same(report.command, ['node', 'dist/example-app/server.js'])
    const requests = report.requests!
    t.equal(requests.lost, 0, 'no request lost')
    t.ok(requests.inFlightAtSignal > 0, `${requests.inFlightAtSignal} requests in flight at the stop`)
    t.ok(requests.ok >= requests.inFlightAtSignal, 'every one of them answered')
    t.equal(classified(requests), requests.total)
    t.match(report.exit, { code: 0, signal: null })
    t.ok(report.exit!.afterSignalMs! < 10_000, `exit ${report.exit!.afterSignalMs} ms after the stop`)
    t.match(report.gracePeriod, { ms: 90_000, exceeded: false })
    t.ok(report.output.some(line => /"msg":"shutdown complete"/.test(line)), 'the container\'s log: its shutdown, logged in the container')
  })

  t.test('npm start as PID 1: npm exits at the signal and the kernel kills node with its requests', async t => {
    const { code, report } = await verifyJson(t, [...PREDICT, '--', 'npm', 'start'], { cwd: repoRoot, env })
    t.equal(code, 1)
    t.same(report.command, ['npm', 'start'])
    const requests = report.requests!
    t.ok(requests.inFlightAtSignal > 0, `${requests.inFlightAtSignal} requests in flight at the stop`)
    t.ok(requests.lost > 0 && requests.lost === requests.reset + requests.timeout, `${requests.lost} requests lost`)
    t.equal(classified(requests), requests.total)
    t.match(report.exit, { code: 1, signal: null }, 'npm\'s own exit code')
    t.match(report.failures, [/requests? lost/, /exited with code 1/])
    t.ok(report.output.some(line => /npm error signal SIGTERM/.test(line)), 'npm says the script\'s shell died of SIGTERM')
    t.notOk(report.output.some(line => /shutdown started/.test(line)), 'node never saw the signal: its drain never started')
  })
})
