// Where the plugin is registered, when the signal comes, and how the process exits: spawned apps,
// real signals.
import t from 'tap'
import Fastify from 'fastify'
import { fileURLToPath } from 'node:url'
import gracefulTermination from '../lib/index.js'
import { startedByFastifyCli } from '../lib/registration.js'
import { baseEnv, fixtureArgs, fixturePath, hasMessage, LEVEL, spawnProcess, startApp, startCommand } from './helpers/app-process.js'
import { request } from './helpers/http.js'

t.test('registered inside an encapsulated plugin: a coded error at register time', async t => {
  const app = Fastify()
  app.register(async child => { await child.register(gracefulTermination, { handleSignals: false }) }, { prefix: '/api' })
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_GRACEFUL_NOT_ROOT',
    message: /must be registered on the root instance .*\(prefix "\/api"\).*wrap the plugin that registers it with fastify-plugin/
  })
})

t.test('an app that registers it inside an encapsulated plugin does not start', async t => {
  const app = spawnProcess(t, process.execPath, fixtureArgs('app.ts'), {
    env: { ...baseEnv(), FIXTURE_SCOPE: 'child' }
  })
  const outcome = await Promise.race([
    app.exited.then(exit => `exit code ${exit.code}`),
    app.waitForLog(hasMessage(/Server listening/)).then(() => 'listening', () => 'exited')
  ])
  t.equal(outcome, 'exit code 1', 'it exits before it listens')
  t.match(app.stderr.join(''), /FST_GRACEFUL_NOT_ROOT/)
})

t.test('SIGTERM while the app is still starting: exit 0 at once, and it says so', async t => {
  const app = spawnProcess(t, process.execPath, fixtureArgs('app.ts'), {
    env: { ...baseEnv(), FIXTURE_BOOT_MS: '3000', FIXTURE_OPTIONS: JSON.stringify({ gracePeriod: 30_000 }) }
  })
  await app.waitForLog(hasMessage(/loading the model/))
  const signalledAt = performance.now()
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 0, 'nothing was in flight')
  t.ok(exit.at - signalledAt < 2000, `without waiting for the model (${(exit.at - signalledAt).toFixed(0)} ms)`)
  t.ok(app.logs.some(hasMessage(/stopped while starting/)))
  t.notOk(app.logs.some(line => (line.level ?? 0) >= LEVEL.error), 'no error logged')
})

t.test('a non-zero exit code the app set survives a clean drain', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 } })
  t.same((await request(app.port, '/exit-code?code=3')).json(), { exitCode: 3 })
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 3)
  t.ok(app.logs.some(hasMessage(/shutdown complete/)))
})

t.test('an onClose hook that fails: one line says so, exit 1', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: { FIXTURE_FAILING_ON_CLOSE: '1' } })
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 1)
  const failed = app.logs.filter(hasMessage(/fastify\.close\(\) failed/))
  t.equal(failed.length, 1, 'logged once')
  t.match(failed[0], { level: LEVEL.error, err: { message: 'the pool refused to close' } })
  t.notOk(app.logs.some(hasMessage(/did not finish in time/)), 'not also reported as a timeout')
  t.ok(app.logs.some(hasMessage(/^exiting with code 1: fastify\.close\(\) did not complete/)))
})

t.test('with Fastify\'s default logger: false, an exit 1 still says why on stderr', async t => {
  const app = await startApp(t, { options: { gracePeriod: 3000 }, fastify: { logger: false } })
  const cut = request(app.port, '/slow?ms=30000').catch(() => 'cut')
  // No request log without a logger: the count on /stats says the request is in flight.
  for (let attempt = 0; (await request(app.port, '/stats')).json().activeRequests < 1; attempt++) {
    if (attempt === 100) throw new Error('the request never was in flight')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  app.kill('SIGTERM')
  const exit = await app.exited
  t.equal(exit.code, 1)
  t.equal(await cut, 'cut')
  const lines = app.stderr.join('').trim().split('\n').map(line => JSON.parse(line))
  t.match(lines, [
    { level: LEVEL.error, plugin: 'fastify-graceful-termination', msg: /drain deadline reached/ },
    { level: LEVEL.error, kind: 'request', url: '/slow?ms=30000', msg: /cut request still in flight/ },
    { level: LEVEL.error, msg: 'exiting with code 1: work was still in flight at the drain deadline' }
  ])
  t.notOk(app.logs.some(line => line.plugin !== undefined), 'nothing of the plugin on stdout')
})

t.test('with logger: false, an error on stderr has its type, message and stack, as pino writes it', async t => {
  const app = await startApp(t, { fastify: { logger: false }, env: { FIXTURE_FAILING_ON_CLOSE: '1' } })
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 1)
  const lines = app.stderr.join('').trim().split('\n').map(line => JSON.parse(line))
  t.match(lines.find(line => /fastify\.close\(\) failed/.test(line.msg)), {
    level: LEVEL.error,
    err: { type: 'Error', message: 'the pool refused to close', stack: /at / }
  })
})

t.test('started by fastify-cli: a warning with the fix', async t => {
  const cli = fileURLToPath(new URL('../node_modules/.bin/fastify', import.meta.url))
  const app = await startCommand(t, process.execPath, [cli, 'start', '-l', 'info', '-a', '127.0.0.1', fixturePath('cli-app.mjs')], {
    env: { ...baseEnv(), PORT: '0' }
  })
  // Logged at register time, so before the app listened.
  const warning = app.logs.find(hasMessage(/fastify-cli/))
  t.match(warning, { level: LEVEL.warn, plugin: 'fastify-graceful-termination', msg: /calls fastify\.close\(\) at once.*Start the app with node/ })
  t.same((await request(app.port, '/hello')).json(), { hello: 'world' }, 'the app itself runs')
})

t.test('a script path that cannot be resolved is not fastify-cli', async t => {
  t.equal(startedByFastifyCli('/no/such/node_modules/fastify-cli/cli.js'), false)
})

t.test('started by node: no fastify-cli warning', async t => {
  const app = await startApp(t)
  t.equal((await request(app.port, '/ready')).status, 200)
  t.notOk(app.logs.some(hasMessage(/fastify-cli/)))
})
