// Every exit the plugin makes writes its last lines first: an exit 1 must say why, even where
// stdout is asynchronous (PM2's cluster mode). The fixture's FIXTURE_ASYNC_OUTPUT makes it so.
import t from 'tap'
import { flushOutput, type OutputStream } from '../lib/log.js'
import { baseEnv, hasMessage, requestFor, spawnProcess, startApp, fixtureArgs, type AppProcess } from './helpers/app-process.js'
import { openConnections, request } from './helpers/http.js'

const ASYNC_OUTPUT = { FIXTURE_ASYNC_OUTPUT: '1' }

/** A stream that calls back `ms` later, in order, as an asynchronous file write does. */
function slowStream (ms: number): OutputStream & { written: string[] } {
  const written: string[] = []
  return {
    written,
    write (chunk, _encoding, callback) {
      setTimeout(() => { written.push(chunk); callback() }, ms)
      return true
    }
  }
}

const pluginLines = (app: Pick<AppProcess, 'logs'>): string[] =>
  app.logs.filter(line => line.plugin === 'fastify-graceful-termination').map(line => line.msg!)

t.test('flushOutput resolves once every stream has called back', async t => {
  const streams = [slowStream(20), slowStream(40)]
  t.equal(await flushOutput(1000, streams), true)
  t.same(streams.map(stream => stream.written), [[''], ['']])
})

t.test('flushOutput gives up after maxMs', async t => {
  const stuck: OutputStream = { write: () => true }
  const started = performance.now()
  t.equal(await flushOutput(50, [stuck]), false)
  t.ok(performance.now() - started < 1000, 'it does not wait for the stream')
})

t.test('flushOutput writes to stdout and stderr by default', async t => {
  t.equal(await flushOutput(1000), true)
})

t.test('a drained exit 0 keeps its last lines', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: ASYNC_OUTPUT })
  const inFlight = request(app.port, '/slow?ms=300')
  await app.waitForLog(requestFor('/slow?ms=300'))
  app.kill('SIGTERM')
  t.equal((await inFlight).status, 200)
  t.equal((await app.exited).code, 0)
  t.match(pluginLines(app).slice(-2), [/^drained/, 'shutdown complete'], 'the last lines are written')
})

t.test('an exit 1 at the drain deadline keeps every cut request and why', async t => {
  const app = await startApp(t, { options: { gracePeriod: 1000 }, env: ASYNC_OUTPUT })
  const cut = [request(app.port, '/slow?ms=5000'), request(app.port, '/slow?ms=5001')].map(pending => pending.catch(() => 'cut'))
  await app.waitForLog(requestFor('/slow?ms=5000'))
  await app.waitForLog(requestFor('/slow?ms=5001'))
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 1)
  await Promise.all(cut)
  t.equal(app.logs.filter(hasMessage(/^cut request/)).length, 2, 'each cut request')
  t.equal(pluginLines(app).at(-1), 'exiting with code 1: work was still in flight at the drain deadline')
})

t.test('the exit code the app set is said before the exit', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: ASYNC_OUTPUT })
  await request(app.port, '/exit-code?code=3')
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 3)
  t.equal(pluginLines(app).at(-1), 'exiting with the exit code the app set')
})

t.test('a second signal: the line that says so is written before the exit', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: ASYNC_OUTPUT })
  const inFlight = request(app.port, '/slow?ms=5000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=5000'))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/stopped accepting/))
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 1)
  await inFlight
  t.equal(pluginLines(app).at(-1), 'second signal during shutdown: exiting at once with code 1')
})

t.test('an error during the shutdown: said, then exit 1', async t => {
  // Still accepting for a while after the signal, so the request that throws gets in.
  const app = await startApp(t, { options: { gracePeriod: 10_000, readinessDelay: 5000 }, env: ASYNC_OUTPUT })
  const open = await openConnections(t, app.port, 1)
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  await request(app.port, '/crash', { agent: open })
  t.equal((await app.exited).code, 1)
  t.equal(pluginLines(app).at(-1), 'error during shutdown: exiting at once with code 1')
})

t.test('an uncaught error: said, drained, then exit 1', async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, env: ASYNC_OUTPUT })
  await request(app.port, '/crash')
  t.equal((await app.exited).code, 1)
  t.match(pluginLines(app).slice(1), [/^uncaught error: shutting down/, /shutdown started/])
  t.equal(pluginLines(app).at(-1), 'shutdown complete')
})

t.test('a shutdown that overruns (a blocked event loop): the backstop says so, then exit 1', async t => {
  const gracePeriod = 1000
  const app = await startApp(t, { options: { gracePeriod }, env: { ...ASYNC_OUTPUT, FIXTURE_ON_CLOSE_MS: '50' } })
  const inFlight = request(app.port, '/slow?ms=5000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=5000'))
  // Blocked from 100 ms after the signal until past the drain deadline and the backstop: when it
  // runs again, the drain deadline fires, then the backstop, while the onClose hook still waits.
  await request(app.port, '/block-later?after=100&ms=1500')
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 1)
  await inFlight
  t.ok(app.logs.some(hasMessage(/^shutdown overran the grace period/)), 'the backstop says why')
})

t.test('a signal while starting: the line that says so is written before the exit', async t => {
  const app = spawnProcess(t, process.execPath, fixtureArgs('app.ts'), {
    env: { ...baseEnv(), ...ASYNC_OUTPUT, FIXTURE_BOOT_MS: '3000', FIXTURE_OPTIONS: JSON.stringify({ gracePeriod: 30_000 }) }
  })
  await app.waitForLog(hasMessage(/loading the model/))
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
  t.equal(pluginLines(app).at(-1), 'stopped while starting: nothing was in flight')
})
