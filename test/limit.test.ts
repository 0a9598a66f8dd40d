// The concurrency limit on its own: no Fastify, no sockets, only entries and turns.
import t, { type Test } from 'tap'
import { Semaphore } from 'async-mutex'
import { setImmediate as nextLoopTurn } from 'node:timers/promises'
import { ConcurrencyLimit, type Place, type LimitOptions, type Turn } from '../lib/limit.js'

interface Request {
  name: string
  /** undefined: refused */
  admission: Place | undefined
  /** Settles with the turn onTurn was called with. */
  turn: Promise<Turn>
}

/** A limit whose every onTurn call is recorded in `turns`, as `name:turn`. */
function limitWithLog (options: Partial<LimitOptions>) {
  const limit = new ConcurrencyLimit({ maxConcurrency: 1, maxQueue: 0, queueTimeout: 0, ...options })
  const turns: string[] = []
  function enter (name: string, mayQueue = true): Request {
    let onTurn!: (turn: Turn) => void
    const turn = new Promise<Turn>(resolve => { onTurn = resolve })
    const admission = limit.enter(mayQueue)
    admission?.whenTurn(turn => {
      turns.push(`${name}:${turn}`)
      onTurn(turn)
    })
    return { name, admission, turn }
  }
  return { limit, turns, enter }
}

/** One slot, taken by 'holder', with 'a' then 'b' waiting for it; every cancel of the line recorded. */
function twoWaitingForOneSlot (t: Test) {
  const cancels = t.capture(Semaphore.prototype, 'cancel', Semaphore.prototype.cancel)
  const { limit, turns, enter } = limitWithLog({ maxConcurrency: 1, maxQueue: 3 })
  return { cancels, limit, turns, enter, holder: enter('holder'), a: enter('a'), b: enter('b') }
}

t.test('slots are taken at once up to maxConcurrency, then requests queue, then are refused', async t => {
  const { limit, enter } = limitWithLog({ maxConcurrency: 2, maxQueue: 1 })
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(name => enter(name))
  t.equal(a!.admission?.waiting, false, 'a runs at once')
  t.equal(b!.admission?.waiting, false, 'b runs at once')
  t.equal(c!.admission?.waiting, true, 'c waits')
  t.equal(d!.admission, undefined, 'd is refused: the queue is full')
  t.equal(limit.running, 2)
  t.equal(limit.queued, 1)
})

t.test('a freed slot goes to the oldest waiter: arrival order is kept', async t => {
  const { limit, turns, enter } = limitWithLog({ maxConcurrency: 1, maxQueue: 3 })
  const first = enter('first')
  const waiters = ['w1', 'w2', 'w3'].map(name => enter(name))
  t.equal(limit.queued, 3)

  first.admission!.leave()
  for (const waiter of waiters) {
    t.equal(await waiter.turn, 'run', `${waiter.name} runs`)
    t.equal(limit.running, 1, 'never more than maxConcurrency')
    waiter.admission!.leave()
  }
  t.same(turns, ['w1:run', 'w2:run', 'w3:run'])
  t.equal(limit.running, 0, 'the last slot given back is free')
  t.equal(limit.queued, 0)
  t.equal(enter('after').admission?.waiting, false, 'and taken at once by the next request')
})

t.test('leave() gives a slot back once, however often it is called', async t => {
  const { limit, enter } = limitWithLog({ maxConcurrency: 1 })
  const a = enter('a')
  a.admission!.leave()
  a.admission!.leave()
  t.equal(limit.running, 0)
  t.equal(enter('b').admission?.waiting, false, 'b takes the slot')
  t.equal(enter('c').admission, undefined, 'c finds no second slot: the first leave() counted once')
  t.equal(limit.running, 1)
})

t.test('a waiter that leaves gives its place back and never gets a turn', async t => {
  const { limit, turns, enter } = limitWithLog({ maxConcurrency: 1, maxQueue: 1 })
  const holder = enter('holder')
  const gone = enter('gone')
  t.equal(gone.admission?.waiting, true)
  gone.admission!.leave()
  gone.admission!.leave()
  t.equal(gone.admission!.waiting, false)
  t.equal(limit.queued, 0, 'its place is given back')

  const next = enter('next')
  t.equal(next.admission?.waiting, true, 'the place is taken by the next request')
  holder.admission!.leave()
  t.equal(await next.turn, 'run', 'the slot passes over the one that left')
  t.same(turns, ['next:run'], 'the one that left never got a turn')
  t.equal(limit.running, 1)
})

t.test('mayQueue false (draining): a free slot is taken, but nobody queues', async t => {
  const { limit, enter } = limitWithLog({ maxConcurrency: 1, maxQueue: 5 })
  t.equal(enter('a', false).admission?.waiting, false, 'a free slot is still taken')
  t.equal(enter('b', false).admission, undefined, 'no slot: refused rather than queued')
  t.equal(enter('c', true).admission?.waiting, true, 'the same request while serving would queue')
  t.equal(limit.queued, 1)
})

t.test('queueTimeout: a waiter that waits too long is told so and leaves the queue', async t => {
  const queueTimeout = 50
  const { limit, turns, enter } = limitWithLog({ maxConcurrency: 1, maxQueue: 2, queueTimeout })
  const holder = enter('holder')
  const startedAt = performance.now()
  const late = enter('late')
  t.equal(await late.turn, 'timed-out')
  const waitedMs = performance.now() - startedAt
  t.ok(waitedMs >= queueTimeout - 1, `it waited the queueTimeout (${waitedMs.toFixed(1)} ms)`)
  t.equal(limit.queued, 0)
  late.admission!.leave()

  // A waiter served in time is not timed out later: its timer is gone. A second one queued after
  // it times out after it would have, which is the event to wait for.
  const served = enter('served')
  holder.admission!.leave()
  t.equal(await served.turn, 'run')
  const after = enter('after')
  t.equal(await after.turn, 'timed-out')
  t.same(turns, ['late:timed-out', 'served:run', 'after:timed-out'])
  t.equal(limit.running, 1, 'the slot went to the waiter served in time, not to the one timed out')
})

t.test('a slot freed with only departed waiters in the line becomes free again', async t => {
  const { limit, enter } = limitWithLog({ maxConcurrency: 1, maxQueue: 3 })
  const holder = enter('holder')
  for (const name of ['g1', 'g2']) enter(name).admission!.leave()
  holder.admission!.leave()
  await nextLoopTurn() // the slot passes through both departed places, one promise reaction each
  t.equal(limit.running, 0)
  t.equal(enter('next').admission?.waiting, false, 'the next request takes it at once')
})

t.test('many waiters leaving while no slot frees: the line is rebuilt, order kept', async t => {
  const { cancels, limit, turns, enter, holder, a, b } = twoWaitingForOneSlot(t)
  for (let i = 0; i < 100; i++) {
    enter(`gone${i}`).admission!.leave()
    await nextLoopTurn() // clients hang up one event at a time
  }
  // Every 4th departure (more than maxQueue of them) rebuilds the line, so it never grows past
  // 2 * maxQueue + 1 entries; without it, it would hold 102.
  t.equal(cancels.calls.length, 25, 'the line was rebuilt, not left to grow')
  t.equal(limit.queued, 2)

  holder.admission!.leave()
  t.equal(await a.turn, 'run')
  a.admission!.leave()
  t.equal(await b.turn, 'run')
  t.same(turns, ['a:run', 'b:run'])
})

t.test('a slot freed while the line is being rebuilt goes to the oldest waiter', async t => {
  const { cancels, limit, turns, enter, holder, a, b } = twoWaitingForOneSlot(t)
  for (const name of ['g1', 'g2', 'g3', 'g4']) enter(name).admission!.leave()
  t.equal(cancels.calls.length, 1, 'the fourth departure cancelled the line')
  // Before its entries line up again (on the next promise reactions), the slot frees.
  holder.admission!.leave()
  t.equal(await a.turn, 'run')
  await nextLoopTurn()
  t.same(turns, ['a:run'], 'b still waits')
  t.equal(limit.running, 1)
  t.equal(limit.queued, 1)
  a.admission!.leave()
  t.equal(await b.turn, 'run')
  t.same(turns, ['a:run', 'b:run'])
})
