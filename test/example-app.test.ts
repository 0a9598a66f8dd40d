// The example app as users run it: compiled, in its own process, settings from the
// cerebrium.toml of its working directory, stopped with a real SIGTERM.
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import WebSocket from 'ws'
import { fileURLToPath } from 'node:url'
import { hasMessage, LEVEL, requestFor, spawnProcess, startCommand } from './helpers/app-process.js'
import { exampleAppEnv } from './helpers/example-app.js'
import { failure, openConnections, request } from './helpers/http.js'

const server = fileURLToPath(new URL('../dist/example-app/server.js', import.meta.url))

/** A fresh working directory, with a cerebrium.toml when one is given. */
function workingDir (t: Test, toml?: string): string {
  return t.testdir(toml === undefined ? {} : { 'cerebrium.toml': toml })
}

function startExampleApp (t: Test, { toml, env = {} }: { toml?: string, env?: Record<string, string> } = {}) {
  return startCommand(t, process.execPath, [server], { cwd: workingDir(t, toml), env: exampleAppEnv(env) })
}

function postJson (port: number, path: string, body: unknown) {
  return request(port, path, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json' }
  })
}

const settingsLine = hasMessage(/^settings$/)

t.test('routes', async t => {
  const app = await startExampleApp(t)

  t.test('POST /hello', async t => {
    const response = await postJson(app.port, '/hello', {})
    t.equal(response.status, 200)
    t.same(response.json(), { message: 'Hello Cerebrium!' })
  })

  t.test('readiness and liveness from the plugin', async t => {
    const ready = await request(app.port, '/ready')
    t.equal(ready.status, 200)
    t.same(ready.json(), { status: 'ready', active_requests: 0, queued: 0 })
    t.same((await request(app.port, '/health')).json(), { status: 'ok' })
  })

  t.test('POST /predict answers after `ms`', async t => {
    const response = await postJson(app.port, '/predict', { input: 'Cerebrium', ms: 50 })
    t.equal(response.status, 200)
    t.same(response.json(), { output: 'muirbereC', ms: 50 })
  })

  t.test('POST /predict takes 1000 ms by default', async t => {
    const started = performance.now()
    const response = await postJson(app.port, '/predict', { input: 'ab' })
    t.same(response.json(), { output: 'ba', ms: 1000 })
    t.ok(performance.now() - started >= 900, 'it did wait')
  })

  const badBodies: Array<[string, unknown]> = [
    ['no input', {}],
    ['a number as input', { input: 5 }],
    ['a negative ms', { input: 'x', ms: -1 }],
    ['a fractional ms', { input: 'x', ms: 1.5 }],
    ['ms as a string', { input: 'x', ms: '100' }],
    ['ms past the limit', { input: 'x', ms: 600_000 }],
    ['not JSON', '{"input": '],
    ['a JSON array', ['x']]
  ]
  for (const [what, body] of badBodies) {
    t.test(`POST /predict with ${what}: 400`, async t => {
      const response = await postJson(app.port, '/predict', body)
      t.equal(response.status, 400)
      t.match(response.json(), { statusCode: 400, error: 'Bad Request' })
    })
  }
})

t.test('with no cerebrium.toml it starts on the defaults and says so', async t => {
  const app = await startExampleApp(t)
  const settings = await app.waitForLog(settingsLine)
  t.match(settings, { found: false, port: 0 })
  t.notOk('gracePeriod' in settings, 'the plugin default applies')
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
})

t.test('SIGTERM during /predict: the inference finishes, new connections are refused, exit 0', async t => {
  const app = await startExampleApp(t)
  const open = await openConnections(t, app.port, 2)
  const inFlight = postJson(app.port, '/predict', { input: 'drain me', ms: 1500 })
  await app.waitForLog(requestFor('/predict'))
  app.kill('SIGTERM')
  await app.waitForLog(hasMessage(/stopped accepting connections/))

  t.equal((await request(app.port, '/ready', { agent: open })).status, 503, 'readiness fails at once')
  t.equal(await failure(postJson(app.port, '/hello', {})), 'ECONNREFUSED', 'a new connection is refused')
  const served = await request(app.port, '/hello', { method: 'POST', agent: open })
  t.equal(served.status, 200, 'a request on a connection already open is served')
  t.equal(served.headers.connection, 'close')

  const finished = await inFlight
  t.equal(finished.status, 200, 'the admitted inference is not cut')
  t.same(finished.json(), { output: 'em niard', ms: 1500 })
  const exit = await app.exited
  t.equal(exit.code, 0)
  t.ok(app.logs.some(hasMessage(/shutdown complete/)))
})

t.test('SIGTERM during /generate: the generation streams every token, then exit 0', async t => {
  const app = await startExampleApp(t)
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.request({ host: '127.0.0.1', port: app.port, path: '/generate', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, resolve)
      .on('error', reject)
      .end(JSON.stringify({ prompt: 'one two three', n: 15, ms: 60 }))
  })
  t.equal(response.headers['content-type'], 'text/event-stream')
  const chunks: string[] = []
  response.setEncoding('utf8').on('data', (chunk: string) => chunks.push(chunk))
  await once(response, 'data')
  app.kill('SIGTERM')
  await once(response, 'end')
  const events = chunks.join('').split('\n\n').filter(Boolean)
  t.same(events.slice(0, -1).map(event => JSON.parse(event.replace(/^data: /, '')).index), Array.from({ length: 15 }, (_, i) => i), 'every token, in order')
  t.equal(events.at(-1), 'event: done\ndata: {}', 'then the done event')
  t.equal((await app.exited).code, 0)
})

t.test('a /realtime session echoes, and one open at the drain deadline gets 1001 Going Away', async t => {
  const app = await startExampleApp(t, { env: { GRACE_PERIOD_MS: '2500' } })
  const session = new WebSocket(`ws://127.0.0.1:${app.port}/realtime`)
  const closed = once(session, 'close')
  await once(session, 'open')
  session.send('hello')
  t.equal(String((await once(session, 'message'))[0]), 'hello', 'echoed')
  app.kill('SIGTERM')
  const [code, reason] = await closed
  t.same([code, String(reason)], [1001, 'server shutting down'])
  t.equal((await app.exited).code, 1, 'a session still open at the deadline is cut: exit 1')
})

t.test('/realtime sessions take no slot: with replica_concurrency 1, /predict runs beside two of them', async t => {
  const app = await startExampleApp(t, { env: { MAX_CONCURRENCY: '1' } })
  // A session refused a slot would wait in the queue for good: its handshake times out instead.
  const open = (): WebSocket => new WebSocket(`ws://127.0.0.1:${app.port}/realtime`, { handshakeTimeout: 10_000 })
  const sessions = [open(), open()]
  for (const session of sessions) session.on('error', () => {})
  await app.waitForLog(line => app.logs.filter(requestFor('/realtime')).length === 2 && requestFor('/realtime')(line))
  // Inside the limit, the first session would hold the slot and the second the one place in the
  // queue: this request would be refused at once with FST_GRACEFUL_QUEUE_FULL.
  const predicted = await postJson(app.port, '/predict', { input: 'beside', ms: 50 })
  t.equal(predicted.status, 200)
  t.same(predicted.json(), { output: 'ediseb', ms: 50 })
  for (const session of sessions) {
    if (session.readyState !== WebSocket.OPEN) await once(session, 'open')
    session.send('still here')
    t.equal(String((await once(session, 'message'))[0]), 'still here')
  }

  app.kill('SIGTERM')
  t.equal((await app.waitForLog(hasMessage(/shutdown started/))).activeRequests, 2, 'the sessions count as in flight')
  for (const session of sessions) session.close(1000, 'done')
  t.equal((await app.exited).code, 0, 'the drain ended once the clients closed them')
})

t.test('a client that hangs up stops its inference, and the drain does not wait for it', async t => {
  const app = await startExampleApp(t)
  const req = http.request({ host: '127.0.0.1', port: app.port, path: '/predict', method: 'POST', headers: { 'content-type': 'application/json' } })
  req.on('error', () => {})
  req.end(JSON.stringify({ input: 'never read', ms: 60_000 }))
  await app.waitForLog(requestFor('/predict'))
  req.destroy()
  const stopped = await app.waitForLog(hasMessage(/client went away: inference stopped/))
  t.equal(stopped.ms, 60_000)

  app.kill('SIGTERM')
  const started = await app.waitForLog(hasMessage(/shutdown started/))
  t.equal(started.activeRequests, 0, 'nothing left in flight')
  t.equal((await app.exited).code, 0)
})

const TOML = `
[cerebrium.runtime.custom]
port = 8000
healthcheck_endpoint = "/livez"
readycheck_endpoint = "/readyz"

[cerebrium.scaling]
replica_concurrency = 3
response_grace_period = 7
`

t.test('settings come from the cerebrium.toml in the working directory', async t => {
  const app = await startExampleApp(t, { toml: TOML })
  t.match(await app.waitForLog(settingsLine), { found: true, gracePeriod: 7000, maxConcurrency: 3, readyPath: '/readyz', healthPath: '/livez' })
  t.equal((await request(app.port, '/readyz')).status, 200, 'readiness on readycheck_endpoint')
  t.equal((await request(app.port, '/livez')).status, 200, 'liveness on healthcheck_endpoint')
  t.equal((await request(app.port, '/ready')).status, 404)
  t.notOk(app.logs.some(line => line.level === LEVEL.warn), 'no contradiction, no warning')

  app.kill('SIGTERM')
  t.match(await app.waitForLog(hasMessage(/shutdown started/)), { gracePeriod: 7000 })
  t.equal((await app.exited).code, 0)
})

t.test('with PORT unset, the app listens on the toml\'s port', async t => {
  const probe = net.createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as net.AddressInfo).port
  probe.close()
  await once(probe, 'close')

  const app = await startExampleApp(t, { toml: TOML.replace('port = 8000', `port = ${port}`), env: { PORT: '' } })
  t.equal(app.port, port)
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
})

t.test('environment variables override the toml, and the drift is logged as a warning', async t => {
  const app = await startExampleApp(t, { toml: TOML, env: { GRACE_PERIOD_MS: '5000', MAX_CONCURRENCY: '2', READINESS_DELAY_MS: '100' } })
  t.match(await app.waitForLog(settingsLine), { gracePeriod: 5000, maxConcurrency: 2, readinessDelay: 100 })
  const warnings = app.logs.filter(line => line.level === LEVEL.warn)
  t.match(warnings, [
    { option: 'gracePeriod', value: 5000, source: 'GRACE_PERIOD_MS', tomlValue: 7, msg: /gracePeriod is 5000 .*\.response_grace_period = 7 \(7000\)/ },
    { option: 'maxConcurrency', value: 2, source: 'MAX_CONCURRENCY', tomlValue: 3, msg: /maxConcurrency is 2 .*\.replica_concurrency = 3/ }
  ])
  app.kill('SIGTERM')
  t.equal((await app.exited).code, 0)
})

const startFailures: Array<[string, { toml?: string, env?: Record<string, string> }, object]> = [
  ['a malformed cerebrium.toml', { toml: '[cerebrium.scaling]\nresponse_grace_period = \n' },
    { code: 'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG', message: /cerebrium\.toml is not valid TOML \(line 2/ }],
  ['a wrong type in cerebrium.toml', { toml: '[cerebrium.scaling]\nreplica_concurrency = "10"\n' },
    { code: 'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG', message: /cerebrium\.toml: cerebrium\.scaling\.replica_concurrency must be an integer from 1 to \d+, received "10"$/ }],
  ['a bad GRACE_PERIOD_MS', { env: { GRACE_PERIOD_MS: '30s' } },
    { code: 'FST_GRACEFUL_INVALID_OPTION', message: /GRACE_PERIOD_MS \(environment variable\) must be .*, received "30s"$/ }],
  ['READINESS_DELAY_MS not below the grace period', { toml: TOML, env: { READINESS_DELAY_MS: '7000' } },
    { code: 'FST_GRACEFUL_INVALID_OPTION', message: /option readinessDelay must be less than gracePeriod \(7000, from cerebrium\.toml cerebrium\.scaling\.response_grace_period\), received 7000/ }]
]
for (const [what, { toml, env = {} }, err] of startFailures) {
  t.test(`${what}: the app does not start, logs why and exits 1`, async t => {
    const app = spawnProcess(t, process.execPath, [server], { cwd: workingDir(t, toml), env: exampleAppEnv(env) })
    const exit = await app.exited
    t.equal(exit.code, 1)
    const fatal = app.logs.find(line => line.level === LEVEL.fatal)
    t.match(fatal, { msg: 'could not start', err })
    t.notOk(app.logs.some(hasMessage(/Server listening/)))
  })
}
