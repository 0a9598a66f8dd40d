// The drain's deadline, as handlers see it: fastify.graceful.deadline, and the final event of an
// event stream the deadline cuts, made from its request.
import t from 'tap'
import Fastify from 'fastify'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import gracefulTermination from '../lib/index.js'
import { gracePeriodBudget } from '../lib/shutdown.js'
import { hasMessage, LEVEL, requestFor, startApp } from './helpers/app-process.js'
import { openConnections, openEventStream, request } from './helpers/http.js'
import { capturedLogs } from './helpers/log-watcher.js'

const DEFAULT_FINAL_EVENT = 'event: shutdown\ndata: {"reason":"the server is shutting down"}'

t.test('graceful.deadline: undefined while serving, from the signal on the end of the drain in epoch ms', async t => {
  const gracePeriod = 10_000
  const app = await startApp(t, { options: { gracePeriod } })
  const open = await openConnections(t, app.port, 1)
  t.same((await request(app.port, '/deadline', { agent: open })).json(), { deadline: null })

  const inFlight = request(app.port, '/slow?ms=1500')
  await app.waitForLog(requestFor('/slow?ms=1500'))
  const before = Date.now()
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/shutdown started/))
  const after = Date.now()
  const { deadline } = (await request(app.port, '/deadline', { agent: open })).json()
  const { drainMs } = gracePeriodBudget(gracePeriod)
  t.ok(deadline >= before + drainMs && deadline <= after + drainMs,
    `the signal's time plus the drain's ${drainMs} ms (${deadline - before - drainMs} ms after the signal was sent)`)
  t.equal((await inFlight).status, 200)
  t.equal((await app.exited).code, 0)
})

t.test('a generation that plans with the deadline stops in time and says where to resume: nothing is cut, exit 0', async t => {
  const app = await startApp(t, { options: { gracePeriod: 3000 } })
  const stream = await openEventStream(app.port, '/generate?n=1000&ms=50')
  await app.waitForLog(requestFor('/generate?n=1000&ms=50'))
  app.kill('SIGTERM')
  t.equal(await stream.ended, 'end')
  const endedAt = Date.now()
  const tokens = stream.events.slice(0, -1)
  t.ok(tokens.length > 10, `tokens came until then (${tokens.length})`)
  t.same(tokens, tokens.map((_, index) => `data: token ${index}`), 'every token, in order')
  const [kind, data] = stream.events.at(-1)!.split('\n')
  t.equal(kind, 'event: resume')
  const resume = JSON.parse(data!.replace(/^data: /, ''))
  t.equal(resume.from, tokens.length, 'the client resumes after the last token it got')
  t.ok(endedAt < resume.deadline, 'the stream ended before the deadline')
  t.equal((await app.exited).code, 0, 'the drain ended without a cut')
  t.notOk(app.logs.some(hasMessage(/drain deadline reached/)))
})

t.test('sseFinalEvent as a function: the last event of a stream cut at the deadline carries where to resume', async t => {
  const gracePeriod = 3000
  const app = await startApp(t, { options: { gracePeriod }, env: { FIXTURE_RESUMABLE_EVENTS: '1' } })
  const stream = await openEventStream(app.port, '/events?n=1000&ms=50')
  await app.waitForLog(requestFor('/events?n=1000&ms=50'))
  app.kill('SIGTERM')
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.equal(await stream.ended, 'end', 'the response ends; it is not cut')
  const endedAt = Date.now()
  const tokens = stream.events.slice(0, -1)
  t.same(tokens, tokens.map((_, index) => `data: token ${index}`), 'every token, in order')
  t.equal(stream.events.at(-1), `event: shutdown\ndata: {"resumeFrom":${tokens.length}}`, 'the final event counts what the client got')
  const deadline = (started.time as number) + gracePeriodBudget(gracePeriod).drainMs
  t.ok(endedAt >= deadline - 20, `the stream ended at the deadline (${endedAt - deadline} ms after it)`)
  t.equal((await app.exited).code, 1)
})

t.test('sseFinalEvent as a function that throws or returns no event: the default event, and an error logged; false: no event', async t => {
  const { stream: logStream, lines } = capturedLogs()
  const app = Fastify({ logger: { level: 'error', stream: logStream } })
  await app.register(gracefulTermination, {
    handleSignals: false,
    gracePeriod: 1000,
    sseFinalEvent: request => {
      const { mode } = request.query as { mode: string }
      if (mode === 'throws') throw new Error('no resume token for this stream')
      return mode === 'none' ? false : 'data: a line without the blank line\n'
    }
  })
  app.get('/events', async (_request, reply) => {
    async function * forever (): AsyncGenerator<string> {
      for (let index = 0; ; index++) {
        yield `data: token ${index}\n\n`
        await sleep(20)
      }
    }
    return reply.type('text/event-stream').send(Readable.from(forever()))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port

  const [throws, invalid, none] = await Promise.all(['throws', 'invalid', 'none'].map(mode => openEventStream(port, `/events?mode=${mode}`)))
  const outcome = await app.graceful.shutdown('test')
  t.match(outcome, { drained: false })
  for (const stream of [throws!, invalid!, none!]) t.equal(await stream.ended, 'end')
  t.equal(throws!.events.at(-1), DEFAULT_FINAL_EVENT)
  t.equal(invalid!.events.at(-1), DEFAULT_FINAL_EVENT)
  t.match(none!.events.at(-1), /^data: token \d+$/, 'false: the stream ends after its last token')
  t.match(lines.find(line => /^sseFinalEvent threw/.test(line.msg)), { level: LEVEL.error, err: { message: 'no resume token for this stream' } })
  t.match(lines.find(line => /^sseFinalEvent returned no event/.test(line.msg)), { level: LEVEL.error, returned: 'data: a line without the blank line\n' })
})
