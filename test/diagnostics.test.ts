// The diagnostics channels, read by a subscriber inside a spawned app while real clients go
// through a real SIGTERM: the phases in order, and counts that match what the clients saw.
import t from 'tap'
import diagnosticsChannel from 'node:diagnostics_channel'
import http from 'node:http'
import { REFUSED_CHANNEL, SHUTDOWN_CHANNEL } from '../lib/index.js'
import { publishRefusal, publishShutdownPhase, type ShutdownMessage } from '../lib/diagnostics.js'
import { hasMessage, requestFor, startApp, type AppProcess, type LogLine } from './helpers/app-process.js'
import { openConnections, request, type Response } from './helpers/http.js'

const isShutdownMessage = hasMessage(/^diagnostics: shutdown$/)
const phasesOf = (app: AppProcess): LogLine[] => app.logs.filter(isShutdownMessage)
const refusalsOf = (app: AppProcess): LogLine[] => app.logs.filter(hasMessage(/^diagnostics: refused$/))
const phase = (name: string) => (line: LogLine): boolean => isShutdownMessage(line) && line.phase === name

/** A request whose client hangs up when the test says so. */
function abortable (port: number, path: string): { hangUp (): void, outcome: Promise<string> } {
  const req = http.get({ host: '127.0.0.1', port, path, agent: false })
  const outcome = new Promise<string>(resolve => {
    req.on('response', response => resolve(`answered ${response.statusCode}`))
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
  return { hangUp: () => req.destroy(), outcome }
}

t.test('a drain that completes: started, stopped-accepting, drained, closed; each request counted as its client saw it', async t => {
  const app = await startApp(t, {
    options: { gracePeriod: 10_000, readinessDelay: 2000, maxConcurrency: 3 },
    env: { FIXTURE_DIAGNOSTICS: '1', FIXTURE_OUTSIDE_LIMIT: '1' }
  })
  const open = await openConnections(t, app.port, 3)
  // Every slot taken: two requests to be served, one whose client will hang up during the drain.
  const served = [request(app.port, '/slow?ms=2500&n=1'), request(app.port, '/slow?ms=2500&n=2')]
  const quitter = abortable(app.port, '/slow?ms=8000&n=3')
  for (const n of [1, 2]) await app.waitForLog(requestFor(`/slow?ms=2500&n=${n}`))
  await app.waitForLog(requestFor('/slow?ms=8000&n=3'))
  const refusedBefore = await request(app.port, '/slow?ms=1&before')
  t.equal(refusedBefore.json().code, 'FST_GRACEFUL_QUEUE_FULL', 'refused before the drain: published, never counted in it')

  app.kill('SIGTERM')
  const started = await app.waitForLog(phase('started'))
  t.match(started, { reason: 'SIGTERM', elapsedMs: Number, activeRequests: 3, pendingTasks: 0, deadline: Number })
  // During readinessDelay, on connections already open: two find no slot, one route is outside the limit.
  const refusedDuring = await Promise.all([request(app.port, '/slow?ms=1&during=1', { agent: open }), request(app.port, '/slow?ms=1&during=2', { agent: open })])
  t.same(refusedDuring.map(response => [response.status, response.json().code]), [[503, 'FST_GRACEFUL_SHUTTING_DOWN'], [503, 'FST_GRACEFUL_SHUTTING_DOWN']])
  const outside = await request(app.port, '/outside?ms=300', { agent: open })
  t.equal(outside.status, 200, 'a route outside the limit is served while every slot is busy')
  quitter.hangUp()

  const answers: Response[] = await Promise.all(served)
  t.same(answers.map(answer => answer.status), [200, 200])
  t.equal(await quitter.outcome, 'ECONNRESET', 'the client that hung up got nothing')
  t.equal((await app.exited).code, 0)

  const phases = phasesOf(app)
  t.same(phases.map(line => line.phase), ['started', 'stopped-accepting', 'drained', 'closed'], 'every phase, in order')
  t.ok(phases.every((line, index) => index === 0 || (line.elapsedMs as number) >= (phases[index - 1]!.elapsedMs as number)), 'elapsedMs grows')
  t.ok((phases[1]!.elapsedMs as number) >= 2000, 'stopped accepting after readinessDelay')
  const requests = { inFlightAtStart: 3, arrived: 3, served: 3, refused: 2, abandoned: 1, cut: 0 }
  const tasks = { inFlightAtStart: 0, started: 0, settled: 0, cut: 0 }
  t.same(phases[2]!.requests, requests, 'served: the two in flight and the one outside the limit; refused: two; abandoned: one')
  t.same(phases[2]!.tasks, tasks)
  t.match(phases[3], { reason: 'SIGTERM', drained: true, closed: true, requests, tasks, connections: { closedIdle: Number, destroyed: 0 } })
  t.match(app.logs.find(hasMessage(/^shutdown complete$/)), { requests, tasks, connections: phases[3]!.connections }, 'the last line has the same figures')

  t.same(refusalsOf(app).map(line => [line.code, line.url]), [
    ['FST_GRACEFUL_QUEUE_FULL', '/slow?ms=1&before'],
    ['FST_GRACEFUL_SHUTTING_DOWN', '/slow?ms=1&during=1'],
    ['FST_GRACEFUL_SHUTTING_DOWN', '/slow?ms=1&during=2']
  ], 'each refusal, with its code and its request')
})

t.test('a drain cut at its deadline: started, stopped-accepting, deadline, closed; what was cut is counted', async t => {
  const app = await startApp(t, { options: { gracePeriod: 3000 }, env: { FIXTURE_DIAGNOSTICS: '1' } })
  const open = await openConnections(t, app.port, 1)
  const cut = [1, 2].map(n => request(app.port, `/slow?ms=30000&n=${n}`).then(() => 'answered', (err: NodeJS.ErrnoException) => err.code))
  for (const n of [1, 2]) await app.waitForLog(requestFor(`/slow?ms=30000&n=${n}`))
  t.same((await request(app.port, '/background?ms=30000')).json(), { accepted: true })
  t.same((await request(app.port, '/background?ms=300')).json(), { accepted: true })

  app.kill('SIGTERM')
  await app.waitForLog(phase('stopped-accepting'))
  t.equal((await request(app.port, '/slow?ms=1', { agent: open })).status, 200, 'served on a connection already open')
  t.same(await Promise.all(cut), ['ECONNRESET', 'ECONNRESET'], 'the two long requests were cut')
  t.equal((await app.exited).code, 1)

  const phases = phasesOf(app)
  t.same(phases.map(line => line.phase), ['started', 'stopped-accepting', 'deadline', 'closed'])
  const requests = { inFlightAtStart: 2, arrived: 1, served: 1, refused: 0, abandoned: 0, cut: 2 }
  const tasks = { inFlightAtStart: 2, started: 0, settled: 1, cut: 1 }
  t.match(phases[2], { activeRequests: 2, pendingTasks: 1, requests, tasks })
  t.match(phases[3], { drained: false, closed: true, requests, tasks, connections: { closedIdle: 0, destroyed: 2 } })
  t.match(app.logs.find(hasMessage(/^shutdown complete$/)), { drained: false, requests, tasks })
  t.same(refusalsOf(app), [])
})

t.test('the channels have the names docs/observability.md gives them', async t => {
  t.equal(SHUTDOWN_CHANNEL, 'fastify-graceful-termination.shutdown')
  t.equal(REFUSED_CHANNEL, 'fastify-graceful-termination.refused')
})

t.test('without a subscriber nothing is built: neither the phase message nor anything read off the request', async t => {
  t.equal(diagnosticsChannel.hasSubscribers(SHUTDOWN_CHANNEL), false)
  let built = 0
  const message = (): ShutdownMessage => { built++; return { phase: 'started', reason: 'test', elapsedMs: 0, activeRequests: 0, pendingTasks: 0, deadline: 0 } }
  publishShutdownPhase(message)
  t.equal(built, 0)
  // A request that fails the test the moment anything reads it.
  const untouchable = new Proxy({}, { get: () => { throw new Error('the request was read') } }) as never
  publishRefusal('FST_GRACEFUL_QUEUE_FULL', untouchable)

  const seen: unknown[] = []
  const subscriber = (published: unknown): void => { seen.push(published) }
  diagnosticsChannel.subscribe(SHUTDOWN_CHANNEL, subscriber)
  diagnosticsChannel.subscribe(REFUSED_CHANNEL, subscriber)
  t.teardown(() => {
    diagnosticsChannel.unsubscribe(SHUTDOWN_CHANNEL, subscriber)
    diagnosticsChannel.unsubscribe(REFUSED_CHANNEL, subscriber)
  })
  publishShutdownPhase(message)
  publishRefusal('FST_GRACEFUL_QUEUE_FULL', untouchable)
  t.equal(built, 1, 'built once someone listens')
  t.equal(seen.length, 2)
  t.equal((seen[1] as { code: string }).code, 'FST_GRACEFUL_QUEUE_FULL')
})
