// The shutdown sequence alone, driven through fakes: no server, no process.
import t from 'tap'
import { gracePeriodBudget, ShutdownSequence, type ShutdownOptions } from '../lib/shutdown.js'
import { InFlightTracker, type RequestInfo } from '../lib/tracker.js'
import { LogWatcher } from './helpers/log-watcher.js'

function fakeOptions (overrides: Partial<ShutdownOptions> = {}) {
  const events: string[] = []
  const logs = new LogWatcher<{ level: string, msg: string, fields: object }>()
  const log = (level: string) => (fields: object, msg: string) => {
    events.push(`log:${msg}`)
    logs.add({ level, msg, fields })
  }
  const logged = (pattern: RegExp) => logs.waitFor(line => pattern.test(line.msg))
  const tracker = new InFlightTracker<RequestInfo>({ requestInfo: request => request })
  const arrivals = { count: 0, lastAt: -Infinity }
  const options: ShutdownOptions = {
    tracker,
    gracePeriod: 10_000,
    readinessDelay: 0,
    log: { info: log('info'), warn: log('warn'), error: log('error') },
    connections: {
      noteArrivals: () => { events.push('note arrivals'); return arrivals },
      retire: () => { events.push('retire') },
      stopAccepting: () => { events.push('stop accepting') },
      closeIdle: () => { events.push('close idle'); return 2 },
      endEventStreams: () => { events.push('end event streams'); return 1 },
      closeWebSockets: () => { events.push('close websockets'); return [Promise.resolve()] },
      destroyAll: () => { events.push('destroy all') }
    },
    closeWebSocketsOnDrain: false,
    closeApp: async () => { events.push('close') },
    ...overrides
  }
  return { options, tracker, events, arrivals, logs: logs.lines, logged }
}

t.test('the budget keeps a reserve for close, the last log lines and exit', async t => {
  t.same(gracePeriodBudget(30_000), { drainMs: 28_000, closeMs: 1000, exitMs: 29_500, flushMs: 200 })
  t.same(gracePeriodBudget(900_000), { drainMs: 898_000, closeMs: 1000, exitMs: 899_500, flushMs: 200 }, 'Cerebrium default')
  t.same(gracePeriodBudget(1000), { drainMs: 800, closeMs: 100, exitMs: 950, flushMs: 25 }, 'a fifth of a short grace period')
  t.same(gracePeriodBudget(1600), { drainMs: 1280, closeMs: 160, exitMs: 1520, flushMs: 40 }, "PM2's default kill_timeout")
  for (const gracePeriod of [1, 7, 999, 1000, 1600, 3000, 10_001, 86_400_000]) {
    const { drainMs, closeMs, exitMs, flushMs } = gracePeriodBudget(gracePeriod)
    // The backstop exit (exitMs - flushMs) never cuts a close still within its own time.
    t.ok(drainMs + closeMs <= exitMs - flushMs && exitMs <= gracePeriod, `ordered within ${gracePeriod}`)
  }
})

t.test('nothing in flight: retire, stop accepting, close idle connections, close, in that order', async t => {
  const { options, events, logs } = fakeOptions()
  const sequence = new ShutdownSequence(options)
  const outcome = await sequence.start('test')
  t.match(outcome, { reason: 'test', drained: true, closed: true })
  t.same(events.filter(event => !event.startsWith('log:')), ['retire', 'stop accepting', 'close idle', 'close'])
  t.equal(sequence.state, 'closed')
  t.equal(sequence.accepting, false)
  t.match(logs.find(line => /^drained/.test(line.msg)), { fields: { closedIdleConnections: 2 } })
})

t.test('waits for the readiness delay before refusing, then for the last request', async t => {
  const { options, tracker, events, logged } = fakeOptions({ readinessDelay: 30 })
  const sequence = new ShutdownSequence(options)
  const request = tracker.begin({ method: 'GET', url: '/', id: '1' })
  const stopped = logged(/stopped accepting connections/)
  const done = sequence.start('test')
  t.equal(sequence.accepting, true, 'still accepting during the delay')
  t.same(events.filter(event => !event.startsWith('log:')), ['retire'], 'connections retire at once')
  t.equal(sequence.state, 'draining')
  await stopped
  t.equal(sequence.accepting, false)
  t.notOk(events.includes('close idle'), 'no connection is closed while a request is in flight')
  t.notOk(events.includes('close'), 'not closed while a request is in flight')
  tracker.end(request)
  t.match(await done, { drained: true, closed: true })
})

t.test('the drain deadline logs what is pending, cuts it and still closes', async t => {
  const { options, tracker, events, logs } = fakeOptions({ gracePeriod: 100 })
  tracker.begin({ method: 'POST', url: '/predict', id: 'req-7' })
  tracker.track(new Promise(() => {}))
  const outcome = await new ShutdownSequence(options).start('SIGTERM')
  t.match(outcome, { drained: false, closed: true })
  t.ok(outcome.elapsedMs >= gracePeriodBudget(100).drainMs - 1, 'not before the deadline')
  t.same(events.filter(event => !event.startsWith('log:')), ['retire', 'stop accepting', 'end event streams', 'close websockets', 'destroy all', 'close'],
    'at the deadline: final events, Going Away, then every connection destroyed, not only the idle ones')
  const cut = logs.filter(line => /^cut /.test(line.msg))
  t.match(cut, [
    { level: 'error', fields: { kind: 'request', method: 'POST', url: '/predict', id: 'req-7', ageMs: Number } },
    { level: 'error', fields: { kind: 'task', ageMs: Number } }
  ])
})

t.test('a close that hangs or fails is reported, not awaited forever', async t => {
  const hanging = fakeOptions({ gracePeriod: 100, closeApp: () => new Promise(() => {}) })
  t.match(await new ShutdownSequence(hanging.options).start('x'), { drained: true, closed: false })
  t.ok(hanging.logs.some(line => /did not finish in time/.test(line.msg)))

  const failing = fakeOptions({ closeApp: async () => { throw new Error('pool refused to close') } })
  t.match(await new ShutdownSequence(failing.options).start('x'), { drained: true, closed: false })
  t.match(failing.logs.find(line => line.level === 'error'), { fields: { err: { message: 'pool refused to close' } } })
})

t.test('closeStarted: a direct fastify.close() aborts the signal; start() then reports', async t => {
  const { options, events } = fakeOptions()
  const sequence = new ShutdownSequence(options)
  sequence.closeStarted()
  t.equal(sequence.state, 'closing')
  t.equal(sequence.signal.aborted, true)
  sequence.closed()
  t.match(await sequence.start('late'), { drained: true, closed: true, elapsedMs: 0 })
  t.notOk(events.includes('close'), 'closeApp is not called again')
})

t.test('closeWebSocketsOnDrain: WebSockets get Going Away when the drain starts', async t => {
  const { options, events } = fakeOptions({ closeWebSocketsOnDrain: true })
  await new ShutdownSequence(options).start('SIGTERM')
  t.same(events.filter(event => !event.startsWith('log:')).slice(0, 2), ['retire', 'close websockets'])
})
