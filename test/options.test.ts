// Options are checked at register time, all of them, with errors that say what and why.
import t from 'tap'
import Fastify from 'fastify'
import gracefulTermination, { type GracefulTerminationOptions } from '../lib/index.js'
import { DEFAULTS, resolveOptions } from '../lib/options.js'
import { LEVEL } from './helpers/app-process.js'
import { capturedLogs } from './helpers/log-watcher.js'

function selfContaining (): object {
  const value: Record<string, unknown> = {}
  value.self = value
  return value
}

const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
  ['gracePeriod as a string', { gracePeriod: '30s' }, /option gracePeriod must be an integer from 1 to 2147483647, received "30s"/],
  ['gracePeriod NaN', { gracePeriod: NaN }, /option gracePeriod must be an integer from 1 to 2147483647, received NaN/],
  ['gracePeriod beyond the longest timer', { gracePeriod: 2 ** 31 }, /option gracePeriod .* received 2147483648/],
  ['gracePeriod negative', { gracePeriod: -1 }, /option gracePeriod .* received -1/],
  ['gracePeriod zero', { gracePeriod: 0 }, /option gracePeriod .* received 0/],
  ['gracePeriod fractional', { gracePeriod: 1.5 }, /option gracePeriod .* received 1.5/],
  ['gracePeriod Infinity', { gracePeriod: Infinity }, /option gracePeriod .* received Infinity/],
  ['gracePeriod a BigInt', { gracePeriod: 30000n }, /option gracePeriod .* received 30000n/],
  ['readyPath an object that contains itself', { readyPath: selfContaining() }, /option readyPath .* received object/],
  ['readinessDelay negative', { readinessDelay: -5 }, /option readinessDelay must be an integer >= 0 or a routing watch \(\{ quietPeriod, minimum, maximum \}\), received -5/],
  ['readinessDelay equal to gracePeriod', { gracePeriod: 5000, readinessDelay: 5000 }, /option readinessDelay must be less than gracePeriod \(5000, from option\), received 5000/],
  ['readinessDelay above the default gracePeriod', { readinessDelay: 60_000 }, /option readinessDelay must be less than gracePeriod \(30000, from default\), received 60000/],
  ['readyPath without a slash', { readyPath: 'ready' }, /option readyPath must be a path starting with "\/" or false, received "ready"/],
  ['healthPath true', { healthPath: true }, /option healthPath must be a path starting with "\/" or false, received true/],
  ['the same path twice', { readyPath: '/probe', healthPath: '/probe' }, /option healthPath must be a path other than readyPath \(\/probe\) or false, received "\/probe"/],
  ['maxConcurrency zero', { maxConcurrency: 0 }, /option maxConcurrency must be an integer >= 1, received 0/],
  ['maxQueue negative', { maxQueue: -1 }, /option maxQueue must be an integer >= 0, received -1/],
  ['queueTimeout beyond the longest timer', { maxConcurrency: 1, maxQueue: 1, queueTimeout: 2 ** 31 }, /option queueTimeout must be an integer from 0 to 2147483647, received 2147483648/],
  ['queueTimeout as a string', { queueTimeout: '100' }, /option queueTimeout .* received "100"/],
  ['retryAfter fractional', { retryAfter: 0.5 }, /option retryAfter must be an integer >= 0, received 0.5/],
  ['signals empty', { signals: [] }, /option signals must be a non-empty array of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR2, received \[\]/],
  ['signals with an unknown one', { signals: ['SIGTERM', 'SIGKILL'] }, /option signals .* received \["SIGTERM","SIGKILL"\]/],
  ['signals as a string', { signals: 'SIGTERM' }, /option signals .* received "SIGTERM"/],
  ['handleSignals as a string', { handleSignals: 'no' }, /option handleSignals must be a boolean, received "no"/],
  ['handleErrors as a string', { handleErrors: 'no' }, /option handleErrors must be a boolean, received "no"/],
  ['handleErrors without handleSignals', { handleSignals: false, handleErrors: true }, /option handleErrors must be false while handleSignals is false \(no process handler is installed\), received true/],
  ['closeWebSockets unknown', { closeWebSockets: 'never' }, /option closeWebSockets must be one of "at-deadline", "on-drain", received "never"/],
  ['sseFinalEvent without the blank line', { sseFinalEvent: 'data: bye\n' }, /option sseFinalEvent must be an event ending with a blank line .* or false, received "data: bye\\n"/],
  ['sseFinalEvent true', { sseFinalEvent: true }, /option sseFinalEvent .* received true/],
  ['an unknown option', { gracePeriodMs: 1000 }, /option gracePeriodMs must be one of gracePeriod, .* \(unknown option\), received 1000/]
]

t.test('each bad option fails register with a coded error naming option and value', async t => {
  const listenersBefore = process.listenerCount('SIGTERM')
  for (const [name, options, message] of invalid) {
    const app = Fastify()
    const error = await app.register(gracefulTermination, options as GracefulTerminationOptions).ready()
      .then(() => undefined, (err: unknown) => err)
    t.match(error, { code: 'FST_GRACEFUL_INVALID_OPTION', message }, name)
    t.ok(error instanceof TypeError, `${name}: a TypeError`)
    t.equal(process.listenerCount('SIGTERM'), listenersBefore, `${name}: no signal handler was installed`)
  }
})

t.test('a bad option fails before any route or hook exists', async t => {
  const app = Fastify()
  app.register(gracefulTermination, { readyPath: 'nope' } as GracefulTerminationOptions)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_GRACEFUL_INVALID_OPTION' })
  t.notOk(app.hasRoute({ method: 'GET', url: '/health' }))
})

t.test('defaults', async t => {
  t.same(resolveOptions({}).options, DEFAULTS)
  t.same(resolveOptions(undefined).options, DEFAULTS)
  t.same(resolveOptions({ gracePeriod: undefined }).options, DEFAULTS, 'undefined means the default')
  t.same(DEFAULTS, {
    gracePeriod: 30_000,
    readinessDelay: 0,
    readyPath: '/ready',
    healthPath: '/health',
    maxConcurrency: Infinity,
    maxQueue: 0,
    queueTimeout: 0,
    retryAfter: 1,
    signals: ['SIGTERM', 'SIGINT'],
    handleSignals: true,
    handleErrors: true,
    closeWebSockets: 'at-deadline',
    sseFinalEvent: 'event: shutdown\ndata: {"reason":"the server is shutting down"}\n\n',
    readinessChecks: {},
    livenessChecks: {},
    checkTimeout: 1000,
    checkInterval: 1000
  })
  t.same(resolveOptions({ signals: ['SIGTERM', 'SIGTERM'] }).options.signals, ['SIGTERM'], 'duplicate signals fold')
  t.throws(() => resolveOptions(null), { message: /option \(options\) must be an object, received null/ })
})

t.test('a gracePeriod under 1000 ms warns that it looks like seconds', async t => {
  const { stream, lines } = capturedLogs()
  const app = Fastify({ logger: { stream } })
  await app.register(gracefulTermination, { gracePeriod: 30, handleSignals: false })
  await app.close()
  const warning = lines.find(line => line.level === LEVEL.warn)
  t.match(warning, { gracePeriod: 30, msg: /gracePeriod is 30 ms: .*did you mean 30000\?/ })
})

t.test('a gracePeriod of 1000 ms or more does not warn', async t => {
  const { stream, lines } = capturedLogs()
  const app = Fastify({ logger: { stream } })
  await app.register(gracefulTermination, { gracePeriod: 1000, handleSignals: false })
  await app.close()
  t.notOk(lines.some(line => line.level === LEVEL.warn))
})
