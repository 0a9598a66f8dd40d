// The tracker alone: no Fastify, no sockets.
import t from 'tap'
import { InFlightTracker, type RequestInfo } from '../lib/tracker.js'

const request = (id: string): RequestInfo => ({ method: 'GET', url: `/${id}`, id })
/** A tracker of plain request objects that describe themselves. */
const tracker = (onTaskRejected?: (error: unknown) => void) =>
  new InFlightTracker<RequestInfo>({ requestInfo: info => info, onTaskRejected })

t.test('counts begun requests; ending one twice changes nothing; lists them oldest first', async t => {
  const inFlight = tracker()
  const a = inFlight.begin(request('a'))
  const b = inFlight.begin(request('b'))
  const c = inFlight.begin(request('c'))
  t.equal(inFlight.activeRequests, 3)
  t.same(inFlight.pending().map(work => work.id), ['a', 'b', 'c'])
  inFlight.end(b)
  inFlight.end(b)
  t.equal(inFlight.activeRequests, 2, 'a second end of the same request is ignored')
  t.same(inFlight.pending().map(work => work.id), ['a', 'c'], 'taken out of the middle')
  inFlight.end(a)
  t.same(inFlight.pending().map(work => work.id), ['c'], 'taken off the front')
  const d = inFlight.begin(request('d'))
  inFlight.end(d)
  t.same(inFlight.pending().map(work => work.id), ['c'], 'taken off the back')
  inFlight.end(c)
  t.equal(inFlight.activeRequests, 0)
  t.same(inFlight.pending(), [])
  t.equal(inFlight.idle, true)
  inFlight.begin(request('e'))
  t.same(inFlight.pending().map(work => work.id), ['e'], 'the list starts anew once empty')
})

t.test('a finished request keeps no link to the others: its response would keep them all alive', async t => {
  const inFlight = tracker()
  const a = inFlight.begin(request('a'))
  const b = inFlight.begin(request('b'))
  const c = inFlight.begin(request('c'))
  const d = inFlight.begin(request('d'))
  for (const [entry, where] of [[b, 'the middle'], [a, 'the front'], [d, 'the back'], [c, 'the last one']] as const) {
    inFlight.end(entry)
    t.same([entry.previous, entry.next], [undefined, undefined], `ended from ${where}`)
  }
  t.same(inFlight.pending(), [])
})

t.test('whenIdle waits for requests and tasks alike', async t => {
  const inFlight = tracker()
  await inFlight.whenIdle()
  t.pass('resolves at once when idle')

  let finishTask!: () => void
  const r = inFlight.begin(request('r'))
  inFlight.track(new Promise<void>(resolve => { finishTask = resolve }))
  let idle = false
  const waiting = inFlight.whenIdle().then(() => { idle = true })
  inFlight.end(r)
  await Promise.resolve()
  t.equal(idle, false, 'a task is still pending')
  t.equal(inFlight.pendingTasks, 1)
  finishTask()
  await waiting
  t.equal(idle, true)
  t.equal(inFlight.pendingTasks, 0)
})

t.test('a rejected task is reported, not thrown, and settles', async t => {
  const reported: unknown[] = []
  const inFlight = tracker(error => reported.push(error))
  const failure = new Error('nope')
  const task = Promise.reject(failure)
  t.equal(inFlight.track(task), task)
  await inFlight.whenIdle()
  t.same(reported, [failure])
  await t.rejects(task, failure, 'the caller still sees the rejection')
})

t.test('pending() lists requests and tasks, oldest first, with their age', async t => {
  const inFlight = tracker()
  inFlight.begin(request('old'))
  await new Promise(resolve => setTimeout(resolve, 50))
  inFlight.track(new Promise(() => {}))
  const pending = inFlight.pending()
  t.equal(pending.length, 2)
  t.same(Object.keys(pending[0]!).sort(), ['ageMs', 'id', 'kind', 'method', 'url'])
  t.match(pending[0], { kind: 'request', method: 'GET', url: '/old', id: 'old' })
  t.same(Object.keys(pending[1]!).sort(), ['ageMs', 'kind'])
  // A timer may fire a millisecond early by performance.now(): the bound leaves slack for that.
  t.ok(pending[0]!.ageMs >= 40, `the request's age is measured (${pending[0]!.ageMs} ms after a 50 ms wait)`)
  t.ok(pending[0]!.ageMs >= pending[1]!.ageMs, 'oldest first')
})
