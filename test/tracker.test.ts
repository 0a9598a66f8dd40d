// The tracker alone: no Fastify, no sockets.
import t from 'tap'
import { InFlightTracker } from '../lib/tracker.js'

const info = (id: string) => ({ method: 'GET', url: `/${id}`, id })

t.test('counts begun requests; ending one twice, or one never begun, changes nothing', async t => {
  const tracker = new InFlightTracker()
  const a = {}
  const b = {}
  tracker.begin(a, info('a'))
  tracker.begin(b, info('b'))
  t.equal(tracker.activeRequests, 2)
  tracker.end(a)
  tracker.end(a)
  tracker.end({})
  t.equal(tracker.activeRequests, 1)
  t.same([...tracker.requestKeys()], [b])
  tracker.end(b)
  t.equal(tracker.activeRequests, 0)
  t.equal(tracker.idle, true)
})

t.test('whenIdle waits for requests and tasks alike', async t => {
  const tracker = new InFlightTracker()
  await tracker.whenIdle()
  t.pass('resolves at once when idle')

  const request = {}
  let finishTask!: () => void
  tracker.begin(request, info('r'))
  tracker.track(new Promise<void>(resolve => { finishTask = resolve }))
  let idle = false
  const waiting = tracker.whenIdle().then(() => { idle = true })
  tracker.end(request)
  await Promise.resolve()
  t.equal(idle, false, 'a task is still pending')
  t.equal(tracker.pendingTasks, 1)
  finishTask()
  await waiting
  t.equal(idle, true)
  t.equal(tracker.pendingTasks, 0)
})

t.test('a rejected task is reported, not thrown, and settles', async t => {
  const reported: unknown[] = []
  const tracker = new InFlightTracker(error => reported.push(error))
  const failure = new Error('nope')
  const task = Promise.reject(failure)
  t.equal(tracker.track(task), task)
  await tracker.whenIdle()
  t.same(reported, [failure])
  await t.rejects(task, failure, 'the caller still sees the rejection')
})

t.test('pending() lists requests and tasks, oldest first, with their age', async t => {
  const tracker = new InFlightTracker()
  tracker.begin({}, info('old'))
  await new Promise(resolve => setTimeout(resolve, 20))
  tracker.track(new Promise(() => {}))
  const pending = tracker.pending()
  t.equal(pending.length, 2)
  t.match(pending[0], { kind: 'request', method: 'GET', url: '/old', id: 'old' })
  t.match(pending[1], { kind: 'task' })
  t.ok(pending[0]!.ageMs >= pending[1]!.ageMs)
  t.notOk('startedAt' in pending[0]!, 'no internal field leaks into the log')
})
