// PM2's messages, as PM2 exchanges them with the processes it runs: over an IPC channel, in a
// process whose environment has pm_id. test/pm2.test.ts runs the same under the real PM2.
import t from 'tap'
import { EventEmitter, once } from 'node:events'
import { pm2Channel, PM2_READY_MESSAGE, PM2_SHUTDOWN_MESSAGE, type IpcProcess } from '../lib/pm2.js'
import { SHUTDOWN_MESSAGE_REASON } from '../lib/process-signals.js'
import { baseEnv, fixtureArgs, hasMessage, requestFor, spawnProcess, startApp, type AppProcess } from './helpers/app-process.js'
import { request } from './helpers/http.js'

/** A process with an IPC channel, as the plugin sees it: what it sent, and whether it unref'd the channel. */
function fakeIpc ({ send = true, connected = true, channel = true } = {}) {
  const sent: string[] = []
  const events = new EventEmitter()
  const state = { unrefs: 0 }
  const ipc: IpcProcess & typeof state = Object.assign(state, {
    connected,
    ...send ? { send: (message: string) => sent.push(message) } : {},
    ...channel ? { channel: { unref: () => { state.unrefs++ } } } : {},
    on: (event: 'message', listener: (message: unknown) => void) => events.on(event, listener),
    off: (event: 'message', listener: (message: unknown) => void) => events.off(event, listener)
  })
  return { ipc, sent, emit: (message: unknown) => events.emit('message', message), listeners: () => events.listenerCount('message') }
}

/** The messages a spawned process sends its parent, as they arrive. */
function messagesOf (app: Pick<AppProcess, 'child'>): unknown[] {
  const messages: unknown[] = []
  app.child.on('message', message => messages.push(message))
  return messages
}

const UNDER_PM2 = { pm_id: '0' }
const NOT_CLUSTER_WORKER = { clusterWorker: false }

t.test("sendReady: 'ready' once per process", async t => {
  const { ipc, sent } = fakeIpc()
  const channel = pm2Channel(ipc, NOT_CLUSTER_WORKER)
  t.equal(channel.sendReady(), true)
  t.equal(channel.sendReady(), false, 'a second instance listening sends nothing more')
  t.same(sent, [PM2_READY_MESSAGE])
})

t.test('sendReady: nothing without a connected IPC channel', async t => {
  t.equal(pm2Channel(fakeIpc({ send: false }).ipc, NOT_CLUSTER_WORKER).sendReady(), false)
  const disconnected = fakeIpc({ connected: false })
  t.equal(pm2Channel(disconnected.ipc, NOT_CLUSTER_WORKER).sendReady(), false)
  t.same(disconnected.sent, [])
})

t.test("onShutdownMessage: 'shutdown' only, on an unref'd channel, until stopped", async t => {
  const { ipc, emit, listeners } = fakeIpc()
  let calls = 0
  const stop = pm2Channel(ipc, NOT_CLUSTER_WORKER).onShutdownMessage(() => { calls++ })
  t.equal(ipc.unrefs, 1, 'the channel no longer holds the process open')
  emit({ type: 'log:reload' })
  emit('ready')
  t.equal(calls, 0, "PM2's other messages are not a shutdown")
  emit(PM2_SHUTDOWN_MESSAGE)
  t.equal(calls, 1)
  stop()
  t.equal(listeners(), 0)
  emit(PM2_SHUTDOWN_MESSAGE)
  t.equal(calls, 1)
})

t.test("onShutdownMessage: a cluster worker's channel is left as it is", async t => {
  // It carries the worker's listen(): unref'd, the worker would exit while it awaits the primary.
  const { ipc, emit } = fakeIpc()
  let calls = 0
  pm2Channel(ipc, { clusterWorker: true }).onShutdownMessage(() => { calls++ })
  t.equal(ipc.unrefs, 0)
  emit(PM2_SHUTDOWN_MESSAGE)
  t.equal(calls, 1)
})

t.test('onShutdownMessage: a process without a channel object', async t => {
  const { ipc, emit } = fakeIpc({ channel: false })
  let calls = 0
  pm2Channel(ipc, NOT_CLUSTER_WORKER).onShutdownMessage(() => { calls++ })
  emit(PM2_SHUTDOWN_MESSAGE)
  t.equal(calls, 1)
})

t.test("under PM2: 'ready' once the app listens, once for two instances", async t => {
  const app = spawnProcess(t, process.execPath, fixtureArgs('app.ts'), {
    ipc: true,
    env: { ...baseEnv(), ...UNDER_PM2, FIXTURE_INSTANCES: '2' }
  })
  const messages = messagesOf(app)
  await app.waitForLog(line => line.instance === 1 && hasMessage(/Server listening/)(line))
  // The message and the log lines leave on two channels: the message may trail them.
  if (messages.length === 0) await once(app.child, 'message')
  app.kill('SIGINT')
  t.equal((await app.exited).code, 0)
  t.same(messages, [PM2_READY_MESSAGE], 'one message for both instances')
  t.equal(app.logs.filter(hasMessage(/^sent PM2 'ready'/)).length, 1, 'said once')
})

t.test("under PM2: with startup work, 'ready' once the gate opens, not when the app listens", async t => {
  const app = await startApp(t, { ipc: true, env: { ...UNDER_PM2, FIXTURE_STARTUP_MS: '1500' } })
  const messages = messagesOf(app)
  const listening = performance.now()
  t.equal((await request(app.port, '/ready')).status, 503, 'listening, but still starting')
  await once(app.child, 'message')
  const readyAfterMs = performance.now() - listening
  t.ok(app.logs.some(hasMessage(/^startup work done/)), 'the gate had opened')
  t.same(messages, [PM2_READY_MESSAGE])
  t.comment(`'ready' ${readyAfterMs.toFixed(0)} ms after listening`)
  app.kill('SIGINT')
  t.equal((await app.exited).code, 0)
})

t.test("under PM2: the 'shutdown' message drains like SIGINT, then exit 0", async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, ipc: true, env: UNDER_PM2 })
  const inFlight = request(app.port, '/slow?ms=500')
  await app.waitForLog(requestFor('/slow?ms=500'))
  app.child.send(PM2_SHUTDOWN_MESSAGE)
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.equal(started.reason, SHUTDOWN_MESSAGE_REASON)
  t.equal(started.activeRequests, 1)
  t.equal((await inFlight).status, 200, 'the request in flight is answered')
  t.equal((await app.exited).code, 0)
  t.ok(app.logs.some(hasMessage(/^shutdown complete$/)))
})

t.test("under PM2: a second 'shutdown' message exits at once with code 1", async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, ipc: true, env: UNDER_PM2 })
  const inFlight = request(app.port, '/slow?ms=5000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=5000'))
  app.child.send(PM2_SHUTDOWN_MESSAGE)
  await app.waitForLog(hasMessage(/stopped accepting/))
  const secondAt = performance.now()
  app.child.send(PM2_SHUTDOWN_MESSAGE)
  const exit = await app.exited
  t.equal(exit.code, 1)
  t.ok(exit.at - secondAt < 2000, 'at once, not at the drain deadline')
  t.match(app.logs.filter(hasMessage(/^second signal/)).at(-1), { signal: SHUTDOWN_MESSAGE_REASON })
  await inFlight
})

t.test("under PM2: a 'shutdown' message during a SIGINT's drain is a second signal", async t => {
  const app = await startApp(t, { options: { gracePeriod: 10_000 }, ipc: true, env: UNDER_PM2 })
  const inFlight = request(app.port, '/slow?ms=5000').catch(() => 'cut')
  await app.waitForLog(requestFor('/slow?ms=5000'))
  app.kill('SIGINT')
  await app.waitForLog(hasMessage(/stopped accepting/))
  app.child.send(PM2_SHUTDOWN_MESSAGE)
  t.equal((await app.exited).code, 1)
  t.ok(app.logs.some(hasMessage(/^second signal/)))
  await inFlight
})

t.test("under PM2: the 'shutdown' message while starting exits 0", async t => {
  const app = spawnProcess(t, process.execPath, fixtureArgs('app.ts'), {
    ipc: true,
    env: { ...baseEnv(), ...UNDER_PM2, FIXTURE_BOOT_MS: '3000' }
  })
  await app.waitForLog(hasMessage(/loading the model/))
  app.child.send(PM2_SHUTDOWN_MESSAGE)
  t.equal((await app.exited).code, 0)
  t.match(app.logs.filter(hasMessage(/stopped while starting/)).at(-1), { signal: SHUTDOWN_MESSAGE_REASON })
})

t.test('under PM2: the IPC channel does not hold open an app that has nothing left to do', async t => {
  // The plugin listens for 'shutdown' from registration on; an app that never listens (or whose
  // listen failed) must still exit when its work is done, as it does without PM2.
  const app = spawnProcess(t, process.execPath, fixtureArgs('app.ts'), {
    ipc: true,
    env: { ...baseEnv(), ...UNDER_PM2, FIXTURE_NO_LISTEN: '1' }
  })
  await app.waitForLog(hasMessage(/started without listening/))
  const exit = await Promise.race([app.exited, new Promise(resolve => setTimeout(resolve, 10_000, 'still running').unref())])
  t.match(exit, { code: 0 }, 'it exits by itself')
})

t.test("not under PM2: no 'ready', and the 'shutdown' message is not a signal", async t => {
  const app = await startApp(t, { ipc: true })
  const messages = messagesOf(app)
  app.child.send(PM2_SHUTDOWN_MESSAGE)
  // The request goes after the message: by its answer, the message has been seen.
  t.same((await request(app.port, '/stats')).json(), { state: 'serving', activeRequests: 1 })
  t.notOk(app.logs.some(hasMessage(/PM2/)))
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
  t.same(messages, [])
})
