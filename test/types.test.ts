// Type tests: `npm run lint` type-checks this file, so a public type that drifts fails there
// (an @ts-expect-error that no longer errors fails too). The assertions run the same calls.
import t from 'tap'
import Fastify from 'fastify'
import gracefulTermination, {
  type GracefulRouteConfig,
  type GracefulState,
  type GracefulTerminationOptions,
  type LifecycleState,
  type PlatformName,
  type RoutingWatch,
  type ShutdownOutcome
} from '../lib/index.js'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
const assertType = <T extends true>(_proof?: T): void => {}

t.test('the decorator and the options are typed', async t => {
  const app = Fastify()
  const options: GracefulTerminationOptions = { gracePeriod: 900_000, readinessDelay: 0, signals: ['SIGTERM'], readyPath: false }
  await app.register(gracefulTermination, { ...options, handleSignals: false })

  assertType<Equal<typeof app.graceful, GracefulState>>()
  assertType<Equal<typeof app.graceful.state, LifecycleState>>()
  assertType<Equal<typeof app.graceful.queued, number>>()
  assertType<Equal<LifecycleState, 'starting' | 'serving' | 'draining' | 'closing' | 'closed'>>()
  assertType<Equal<ReturnType<GracefulState['shutdown']>, Promise<ShutdownOutcome>>>()
  assertType<Equal<GracefulTerminationOptions['readinessDelay'], number | RoutingWatch | undefined>>()
  assertType<Equal<PlatformName, 'pm2' | 'cloud-run' | 'fly' | 'ecs' | 'kubernetes'>>()
  const watch: GracefulTerminationOptions = { readinessDelay: { minimum: 8000 } }
  t.same(watch.readinessDelay, { minimum: 8000 })
  const tracked: Promise<number> = app.graceful.track(Promise.resolve(42))
  const signal: AbortSignal = app.graceful.signal
  assertType<Equal<typeof app.graceful.deadline, number | undefined>>()
  const msLeft = (app.graceful.deadline ?? Infinity) - Date.now()
  const resumable: GracefulTerminationOptions = { sseFinalEvent: request => `event: shutdown\ndata: ${JSON.stringify({ id: request.id })}\n\n` }
  t.type(resumable.sseFinalEvent, 'function')
  const routeSettings: GracefulRouteConfig = { limit: false, serveWhileStarting: true }
  app.get('/realtime', { config: { graceful: routeSettings } }, async () => 'typed')
  t.throws(() => {
    // @ts-expect-error a route setting is a boolean
    app.get('/typo', { config: { graceful: { limit: 'no' } } }, async () => 'x')
  }, { code: 'FST_GRACEFUL_INVALID_OPTION' }, 'and is checked at runtime too')

  // @ts-expect-error gracePeriod is a number of milliseconds
  app.register(gracefulTermination, { gracePeriod: '30s' })
  // @ts-expect-error a routing watch has quietPeriod, minimum and maximum only
  app.register(gracefulTermination, { readinessDelay: { quiet: 1000 } })
  // @ts-expect-error only signals close-with-grace can listen to
  app.register(gracefulTermination, { signals: ['SIGKILL'] })
  t.throws(() => {
    // @ts-expect-error state is read-only
    app.graceful.state = 'closed'
  }, TypeError, 'state cannot be written')

  t.equal(await tracked, 42)
  t.equal(signal.aborted, false)
  t.equal(msLeft, Infinity, 'no deadline while serving')
  await t.rejects(async () => { await app.ready() }, { code: 'FST_GRACEFUL_INVALID_OPTION' }, 'the registrations above fail at runtime too')
})
