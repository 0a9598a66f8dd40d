// The shutdown sequence alone, driven through fakes: no server, no process.
import t from 'tap'
import diagnosticsChannel from 'node:diagnostics_channel'
import { SHUTDOWN_CHANNEL, type ShutdownMessage } from '../lib/diagnostics.js'
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
      stopAccepting: async () => { events.push('stop accepting'); return 0 },
      readArrived: async () => { events.push('read arrived') },
      closeIdle: () => { events.push('close idle'); return { closed: 2, finSent: Promise.resolve() } },
      allClosed: async () => { events.push('all closed') },
      destroyAll: () => { events.push('destroy all'); return 0 }
    },
    longLived: {
      endEventStreams: () => { events.push('end event streams'); return 1 },
      closeWebSockets: () => { events.push('close websockets'); return [Promise.resolve()] }
    },
    closeWebSocketsOnDrain: false,
    closeApp: async () => { events.push('close') },
    starting: () => false,
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

t.test('nothing in flight: retire, stop accepting, read what arrived, close idle connections, wait for them, close, in that order', async t => {
  const { options, events, logs } = fakeOptions()
  const sequence = new ShutdownSequence(options)
  const outcome = await sequence.start('test')
  t.match(outcome, { reason: 'test', drained: true, closed: true })
  t.same(events.filter(event => !event.startsWith('log:')), ['retire', 'stop accepting', 'read arrived', 'close idle', 'all closed', 'destroy all', 'close'])
  t.equal(sequence.state, 'closed')
  t.match(logs.find(line => /^drained/.test(line.msg)), { fields: { closedIdleConnections: 2 } })
  t.match(logs.find(line => /^stopped accepting/.test(line.msg)), { fields: { acceptedWhileClosing: 0 } })
  t.notOk(logs.some(line => /kept their side open/.test(line.msg)), 'every client closed its side')
})

t.test('waits for the readiness delay before refusing, then for the last request', async t => {
  const { options, tracker, events, logged } = fakeOptions({ readinessDelay: 30 })
  const sequence = new ShutdownSequence(options)
  const request = tracker.begin({ method: 'GET', url: '/', id: '1' })
  const stopped = logged(/stopped accepting connections/)
  const done = sequence.start('test')
  t.notOk(events.includes('stop accepting'), 'still accepting during the delay')
  t.same(events.filter(event => !event.startsWith('log:')), ['retire'], 'connections retire at once')
  t.equal(sequence.state, 'draining')
  await stopped
  t.ok(events.includes('stop accepting'))
  t.notOk(events.includes('close idle'), 'no connection is closed while a request is in flight')
  t.notOk(events.includes('close'), 'not closed while a request is in flight')
  tracker.end(request)
  t.match(await done, { drained: true, closed: true })
})

t.test('a request read in the last turn of the event loop is waited for before any connection is closed', async t => {
  const { options, tracker, events } = fakeOptions()
  let reads = 0
  options.connections.readArrived = async () => {
    events.push('read arrived')
    // The first look finds a request that waited unread in the kernel; it ends a moment later.
    if (++reads === 1) {
      const found = tracker.begin({ method: 'GET', url: '/unread', id: '2' })
      setTimeout(() => { events.push('request ended'); tracker.end(found) }, 20)
    }
  }
  const outcome = await new ShutdownSequence(options).start('SIGTERM')
  t.match(outcome, { drained: true, closed: true })
  t.same(events.filter(event => !event.startsWith('log:')),
    ['retire', 'stop accepting', 'read arrived', 'request ended', 'read arrived', 'close idle', 'all closed', 'destroy all', 'close'])
})

t.test('connections whose clients keep their side open are destroyed after half the close budget', async t => {
  const { options, events, logs } = fakeOptions({ gracePeriod: 5000 })
  options.connections.allClosed = () => new Promise(() => {})
  options.connections.destroyAll = () => { events.push('destroy all'); return 3 }
  const { closeMs } = gracePeriodBudget(5000)
  const startedAt = performance.now()
  const outcome = await new ShutdownSequence(options).start('SIGTERM')
  const elapsedMs = performance.now() - startedAt
  t.match(outcome, { drained: true, closed: true })
  t.ok(elapsedMs >= closeMs / 2 - 1 && elapsedMs < closeMs, `waited ${elapsedMs.toFixed(0)} ms of the ${closeMs} ms close budget`)
  t.same(events.filter(event => !event.startsWith('log:')).slice(-2), ['destroy all', 'close'])
  t.match(logs.find(line => /kept their side open/.test(line.msg)), { level: 'info', fields: { keptOpen: 3 } })
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

/** Every message published on the shutdown channel while `run` runs. */
async function publishedDuring (run: () => Promise<unknown>): Promise<ShutdownMessage[]> {
  const messages: ShutdownMessage[] = []
  const subscriber = (message: unknown): void => { messages.push(message as ShutdownMessage) }
  diagnosticsChannel.subscribe(SHUTDOWN_CHANNEL, subscriber)
  try {
    await run()
  } finally {
    diagnosticsChannel.unsubscribe(SHUTDOWN_CHANNEL, subscriber)
  }
  return messages
}

t.test('a deadline that comes during readinessDelay: stopped-accepting is still published before it', async t => {
  const { options, tracker } = fakeOptions({ gracePeriod: 100, readinessDelay: 90 })
  tracker.begin({ method: 'GET', url: '/long', id: '1' })
  const sequence = new ShutdownSequence(options)
  const messages = await publishedDuring(() => sequence.start('SIGTERM'))
  t.same(messages.map(message => message.phase), ['started', 'stopped-accepting', 'deadline', 'closed'])
  t.match(messages[2], { activeRequests: 1, requests: { inFlightAtStart: 1, arrived: 0, served: 0, cut: 1 } })
  t.match(messages[3], { reason: 'SIGTERM', drained: false, closed: true, requests: { cut: 1 }, connections: { closedIdle: 0, destroyed: 0 } })
})

t.test('the tally: each request that ends during the drain once, tasks tracked during it, the rest cut', async t => {
  const { options, tracker } = fakeOptions({ gracePeriod: 200 })
  const sequence = new ShutdownSequence(options)
  const atStart = tracker.begin({ method: 'GET', url: '/a', id: '1' })
  tracker.track(new Promise(() => {}))
  const done = sequence.start('SIGTERM')
  t.equal(sequence.tally.counting, true)
  sequence.tally.ended('served')
  tracker.end(atStart)
  const refused = tracker.begin({ method: 'GET', url: '/b', id: '2' })
  sequence.tally.ended('refused')
  tracker.end(refused)
  tracker.begin({ method: 'GET', url: '/c', id: '3' })
  sequence.tally.taskStarted()
  tracker.track(Promise.resolve())
  const outcome = await done
  t.equal(sequence.tally.counting, false)
  t.same(outcome.requests, { inFlightAtStart: 1, arrived: 2, served: 1, refused: 1, abandoned: 0, cut: 1 })
  t.same(outcome.tasks, { inFlightAtStart: 1, started: 1, settled: 1, cut: 1 })
  sequence.tally.taskStarted()
  t.same(sequence.tally.stop(0, 0).tasks.started, 1, 'a task after the drain is not counted')
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

t.test('routing watch: counting starts with the signal, before connections retire', async t => {
  const { options, events } = fakeOptions({ readinessDelay: { quietPeriod: 0, minimum: 0, maximum: 1000 } })
  await new ShutdownSequence(options).start('SIGTERM')
  t.same(events.filter(event => !event.startsWith('log:')).slice(0, 3), ['note arrivals', 'retire', 'stop accepting'])
  const fixed = fakeOptions({ readinessDelay: 10 })
  await new ShutdownSequence(fixed.options).start('SIGTERM')
  t.notOk(fixed.events.includes('note arrivals'), 'a fixed delay counts nothing')
})

/** Starts a sequence with a routing watch; resolves with its 'stopped accepting' line and how long after the start it came. */
async function watchRouting (watch: { quietPeriod: number, minimum: number, maximum: number }, arrive?: (arrivals: { count: number, lastAt: number }) => () => void) {
  const { options, arrivals, logged } = fakeOptions({ readinessDelay: watch })
  const stopped = logged(/stopped accepting connections/)
  const startedAt = performance.now()
  const done = new ShutdownSequence(options).start('SIGTERM')
  const stopArriving = arrive?.(arrivals)
  const line = await stopped
  const afterMs = performance.now() - startedAt
  stopArriving?.()
  await done
  return { fields: line.fields as Record<string, unknown>, afterMs }
}

/** New connections every intervalMs until untilMs after the start. */
const steadyTraffic = (intervalMs: number, untilMs = Infinity) => (arrivals: { count: number, lastAt: number }) => {
  const startedAt = performance.now()
  const timer = setInterval(() => {
    if (performance.now() - startedAt > untilMs) return clearInterval(timer)
    arrivals.count++
    arrivals.lastAt = performance.now()
  }, intervalMs)
  return () => clearInterval(timer)
}

t.test('routing watch: no traffic at all stops accepting once the minimum has passed', async t => {
  const { fields, afterMs } = await watchRouting({ quietPeriod: 50, minimum: 300, maximum: 2000 })
  t.match(fields, { routing: 'stopped', newConnections: 0 })
  t.ok(afterMs >= 299, `not before the minimum (${afterMs.toFixed(0)} ms)`)
  t.ok(afterMs < 1500, `long before the maximum (${afterMs.toFixed(0)} ms)`)
})

t.test('routing watch: steady traffic keeps it accepting; a quiet period after the last connection stops it', async t => {
  const { fields, afterMs } = await watchRouting({ quietPeriod: 200, minimum: 0, maximum: 5000 }, steadyTraffic(20, 600))
  t.match(fields, { routing: 'stopped' })
  t.ok(Number(fields.newConnections) >= 10, `counted the connections (${fields.newConnections})`)
  t.ok(afterMs >= 600 + 200 - 25, `accepting while they came, and a quiet period after (${afterMs.toFixed(0)} ms)`)
  t.ok(afterMs < 3000, `then stopped, not at the maximum (${afterMs.toFixed(0)} ms)`)
})

t.test('routing watch: traffic that never stops meets the maximum', async t => {
  const { fields, afterMs } = await watchRouting({ quietPeriod: 200, minimum: 0, maximum: 500 }, steadyTraffic(20))
  t.match(fields, { routing: 'maximum reached' })
  t.ok(afterMs >= 499, `at the maximum (${afterMs.toFixed(0)} ms)`)
})
