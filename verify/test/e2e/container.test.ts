// --engine podman against the real container: the project's own Dockerfile, built, run and
// stopped by the engine, drains; the same image with `npm start` as its command loses requests.
// The base image is made here once (no registry is reachable) and kept in podman's store.
import t from 'tap'
import { execFile } from 'node:child_process'
import net from 'node:net'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { findBinary } from '../../../test/helpers/system.js'
import { parseArguments, resolveSettings, verify } from '../../src/index.js'
import { classified, repoRoot, verifyJson } from '../helpers.js'
import { ensureBaseImage, podmanConfig } from './podman.js'

const run = promisify(execFile)

/** The containers verify started and left behind: none, ever. */
async function leftBehind (env: NodeJS.ProcessEnv): Promise<string[]> {
  const { stdout } = await run('podman', ['ps', '--all', '--filter', 'name=graceful-shutdown-check-', '--format', '{{.Names}}'], { env })
  return stdout.split('\n').filter(Boolean)
}

// Cold, the base image (debootstrap) and the first build (npm ci of the dev dependencies) take
// minutes; warm, podman's store has both and the whole file takes well under one.
t.setTimeout(15 * 60_000)

const missing = ['podman', 'runc', 'debootstrap'].filter(name => findBinary(name) === undefined)
const skip = (missing.length > 0 && `${missing.join(', ')} not installed (apt-get install podman runc debootstrap; .ci/run does it)`) ||
  (process.getuid?.() !== 0 && 'rootful podman and debootstrap need root')
if (skip && process.env.CI === 'true') t.fail(`${skip}: CI must run the container test`)

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
    // --engine auto: docker's client may be on the PATH without a daemon; podman answers.
    const { code, report } = await verifyJson(t, [...PREDICT.slice(0, -1), 'auto', '--', 'npm', 'start'], { cwd: repoRoot, env })
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

  t.test('node with no SIGTERM handler as PID 1 ignores the signal: the engine\'s SIGKILL at the grace period ends it', async t => {
    // The same process dies of SIGTERM outside a container: the kernel spares PID 1 a signal's default action.
    const server = "require('node:http').createServer((request, response) => response.end('ok')).listen(8000)"
    const { code, report } = await verifyJson(t, ['--warmup', '1000', '--grace-period', '2000', '--dockerfile', 'Dockerfile', '--engine', 'podman',
      '--', 'node', '-e', server], { cwd: repoRoot, env })
    t.equal(code, 1)
    t.match(report.exit, { code: 137, signal: null })
    t.ok(report.exit!.afterSignalMs! >= 2000, `exit ${report.exit!.afterSignalMs} ms after the stop`)
    t.match(report.gracePeriod, { ms: 2000, exceeded: true })
    t.ok(report.failures.some(failure => /^still running 2000 ms after SIGTERM \(the grace period\): SIGKILL sent/.test(failure)), 'the grace period is why it failed')
    t.ok(report.requests!.ok > 0, 'it served until then')
  })

  t.test('a published port already taken: the engine\'s run fails, saying so, and no container is left', async t => {
    const taken = net.createServer().listen(0, '127.0.0.1')
    await once(taken, 'listening')
    t.teardown(() => taken.close())
    const { port } = taken.address() as net.AddressInfo
    const { code, report } = await verifyJson(t, [...PREDICT, '--port', String(port)], { cwd: repoRoot, env })
    t.equal(code, 1)
    t.match(report.failures, [/^podman run of graceful-shutdown-check:\w+ failed \(exit code \d+\)$/])
    t.ok(report.output.some(line => /address already in use/.test(line)), 'with the engine\'s words')
    t.same(await leftBehind(env), [])
  })

  t.test('verify() aborted while the image builds: the build is stopped, nothing is left, it rejects with the reason', async t => {
    const options = resolveSettings(parseArguments(PREDICT)!, { cwd: repoRoot })
    const controller = new AbortController()
    const running = verify(options, { env, signal: controller.signal, onProgress: ({ phase }) => { if (phase === 'building') controller.abort(new Error('stop building')) } })
    await t.rejects(running, { message: 'stop building' })
    t.same(await leftBehind(env), [])
  })
})
