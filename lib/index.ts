import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import type { Server } from 'node:net'
import { createAdmission } from './admission.js'
import { Connections } from './connections.js'
import { finalEventOf } from './final-event.js'
import { ConcurrencyLimit } from './limit.js'
import { pluginLogger } from './log.js'
import { resolveOptions, type GracefulTerminationOptions, type Resolution } from './options.js'
import { detectPlatform } from './platform.js'
import { pm2 } from './pm2.js'
import { failProcess, handleProcessSignals } from './process-signals.js'
import { holdBackContinue } from './refusal.js'
import { assertRootInstance, FASTIFY_CLI_WARNING, startedByFastifyCli } from './registration.js'
import { createRouteConfig } from './route-config.js'
import { isProbeRequest, registerProbeRoutes } from './routes.js'
import { addressesNotWatched, extraServers } from './servers.js'
import { StartupGate, type StartupWork } from './startup.js'
import { CheckSet } from './checks.js'
import { ShutdownSequence, type LifecycleState, type ShutdownOutcome } from './shutdown.js'
import { InFlightTracker } from './tracker.js'
import { LongLived, type WebSocketServerLike } from './long-lived.js'

export { InvalidOptionError, NotRootError, StartupOverError } from './errors.js'
import { StartupOverError } from './errors.js'
export type { GracefulTerminationOptions, RoutingWatch, ShutdownSignal, SseFinalEvent } from './options.js'
export type { PlatformName } from './platform.js'
export type { ConnectionCounts, LifecycleState, ShutdownOutcome } from './shutdown.js'
export type { DrainCounts, RequestCounts, TaskCounts } from './tally.js'
export { REFUSED_CHANNEL, SHUTDOWN_CHANNEL } from './diagnostics.js'
export type { PhaseFigures, RefusedMessage, ShutdownMessage, ShutdownPhase } from './diagnostics.js'
export type { RefusalCode } from './refusal.js'
export type { HealthCheck, CheckResult } from './checks.js'
export type { StartupWork } from './startup.js'
export type { GracefulRouteConfig } from './route-config.js'

/** `fastify.graceful`: where the instance is in its life, and the levers of its shutdown. */
export interface GracefulState {
  /** 'starting' while startup work is pending, 'serving', then 'draining' from the signal, 'closing' once fastify.close() runs, 'closed'. */
  readonly state: LifecycleState
  /**
   * Requests between their start and the close of their response, queued ones included: all
   * that the drain waits for (probes are not counted). Those in handlers: activeRequests - queued.
   */
  readonly activeRequests: number
  /** Requests waiting for a slot (maxConcurrency reached); always 0 without maxConcurrency. */
  readonly queued: number
  /** What the readiness route reports: true only while serving and while every readiness check passed when it last ran. */
  readonly ready: boolean
  /** Aborted when draining starts: long-lived handlers (SSE, long polls, streams) end on it. */
  readonly signal: AbortSignal
  /**
   * When the drain ends, in epoch milliseconds (compare with Date.now()): what is still in flight
   * then is cut. undefined until the shutdown starts (and when fastify.close() is called directly).
   * A long handler plans with it: it stops a generation in time and tells the client where to resume.
   */
  readonly deadline: number | undefined
  /** Starts the same sequence as SIGTERM; settles when the instance is closed. Never exits the process. */
  shutdown (reason?: string): Promise<ShutdownOutcome>
  /** Keeps the drain open until this background work settles; returns it unchanged. */
  track<T> (work: Promise<T>): Promise<T>
  /**
   * Holds the app in 'starting' (alive, not ready, refusing other work) until this work settles:
   * loading a model, warming a cache. A function is called with `signal`, so a load can stop on
   * shutdown. Call it before listen(). Its rejection ends the process with exit code 1.
   */
  startup<T> (work: StartupWork<T>): Promise<T>
}

declare module 'fastify' {
  interface FastifyInstance {
    graceful: GracefulState
  }
}

const gracefulTermination: FastifyPluginAsync<GracefulTerminationOptions> = async (fastify: FastifyInstance, rawOptions) => {
  assertRootInstance(fastify)
  const resolution = resolveOptions(rawOptions, detectPlatform())
  const { options } = resolution
  const log = pluginLogger(fastify.log)
  logSettings(resolution, log)

  const tracker = new InFlightTracker<FastifyReply>({
    requestInfo: ({ request }) => ({ method: request.method, url: request.url, id: request.id }),
    onTaskRejected: err => log.error({ err }, 'tracked work rejected')
  })
  const limit = Number.isFinite(options.maxConcurrency) ? new ConcurrencyLimit(options) : undefined
  const connections = new Connections({
    onRequestEnd: response => admission.end(response),
    isProbe: isProbeRequest(options)
  })
  const longLived = new LongLived({
    responses: () => connections.responses(),
    finalEvent: finalEventOf(options.sseFinalEvent, response => admission.requestOf(response), log),
    // Registered after this plugin, if at all: looked up when the shutdown needs it.
    webSocketServer: () => (fastify as FastifyInstance & { websocketServer?: WebSocketServerLike }).websocketServer
  })
  const sequence = new ShutdownSequence({
    tracker,
    gracePeriod: options.gracePeriod,
    readinessDelay: options.readinessDelay,
    log,
    connections,
    longLived,
    closeWebSocketsOnDrain: options.closeWebSockets === 'on-drain',
    closeApp: () => fastify.close(),
    starting: (): boolean => gate.starting
  })
  const gate: StartupGate = new StartupGate({
    signal: sequence.signal,
    onOpen: () => {
      log.info({}, 'startup work done: ready')
      if (fastify.server.listening) tellPm2Ready()
    },
    onFailure: err => {
      log.error({ err }, 'startup work failed: this replica cannot serve')
      failStartup()
    },
    onAbandoned: err => log.info({ err }, 'startup work ended after the shutdown started')
  })
  const checks = { timeout: options.checkTimeout, interval: options.checkInterval }
  const readinessChecks = new CheckSet(options.readinessChecks, checks)
  const livenessChecks = new CheckSet(options.livenessChecks, checks)
  const state = (): LifecycleState => sequence.state === 'serving' && gate.starting ? 'starting' : sequence.state
  const underPm2 = resolution.platform?.name === 'pm2'

  const graceful: GracefulState = {
    get state () { return state() },
    get activeRequests () { return tracker.activeRequests },
    get queued () { return limit?.queued ?? 0 },
    get ready () { return state() === 'serving' && readinessChecks.lastOk },
    get signal () { return sequence.signal },
    get deadline () { return sequence.deadline },
    shutdown: (reason = 'shutdown() called') => sequence.start(reason),
    track: work => {
      sequence.tally.taskStarted()
      return tracker.track(work)
    },
    startup: work => {
      if (fastify.server.listening && gate.opened) throw new StartupOverError()
      return gate.add(work)
    }
  }
  fastify.decorate('graceful', graceful)
  const routeConfig = createRouteConfig()
  fastify.addHook('onRoute', routeConfig.check)

  const isProbe = registerProbeRoutes(fastify, options, graceful, { readinessChecks, livenessChecks })
  const admission = createAdmission({
    options,
    tracker,
    serving: () => sequence.state === 'serving',
    starting: () => gate.starting,
    limit,
    log,
    isProbe,
    routeConfig,
    connections,
    tally: sequence.tally
  })
  fastify.addHook('onRequest', admission.admit)
  /** Every server the app listens with: its connections followed, 100 Continue held back until a request is let in. */
  const watch = (server: Server): void => {
    connections.watch(server)
    holdBackContinue(server)
  }
  watch(fastify.server)
  fastify.addHook('onListen', async () => {
    const extra = extraServers(fastify)
    for (const server of extra) watch(server)
    const notWatched = addressesNotWatched(fastify, [fastify.server, ...extra])
    if (notWatched.length > 0) {
      log.error({ addresses: notWatched }, 'listening on addresses whose server this plugin cannot find: their connections will not drain (this Fastify release keeps its servers elsewhere; please report it)')
    }
    tellPm2Ready()
  })
  fastify.addHook('preClose', async () => sequence.closeStarted())
  fastify.addHook('onClose', async () => sequence.closed())

  /** PM2's wait_ready waits for the app to be ready, not only listening: sent once both are true. */
  function tellPm2Ready (): void {
    if (underPm2 && gate.opened && pm2.sendReady()) log.info({}, "sent PM2 'ready': wait_ready ends here")
  }

  if (options.handleSignals) {
    if (startedByFastifyCli()) log.warn({}, FASTIFY_CLI_WARNING)
    const stopHandlingSignals = handleProcessSignals({
      signals: options.signals,
      handleErrors: options.handleErrors,
      shutdownMessage: underPm2,
      gracePeriod: options.gracePeriod,
      log,
      listening: () => fastify.server.listening,
      shutdown: reason => sequence.start(reason)
    })
    fastify.addHook('onClose', async () => stopHandlingSignals())
  }

  /** A startup that failed ends like an uncaught error: the same sequence, then exit 1 (unless the app handles the process itself). */
  function failStartup (): void {
    if (options.handleSignals) failProcess('startup work failed')
    else sequence.start('startup work failed')
  }
}

/** Says once, at start, which platform was found and the settings it shaped, each with its source. */
function logSettings ({ options, platform, sources, warnings }: Resolution, log: FastifyBaseLogger): void {
  const setting = <Value>(value: Value, source: string) => ({ value, source })
  log.info({
    platform: platform?.name ?? null,
    detectedBy: platform?.detectedBy ?? null,
    gracePeriod: setting(options.gracePeriod, sources.gracePeriod),
    readinessDelay: setting(options.readinessDelay, sources.readinessDelay),
    maxConcurrency: setting(Number.isFinite(options.maxConcurrency) ? options.maxConcurrency : 'unlimited', sources.maxConcurrency),
    signals: setting(options.signals, sources.signals)
  }, platform === undefined ? 'no platform detected: the defaults apply' : `running on ${platform.name} (${platform.detectedBy} is set)`)
  for (const { fields, message } of warnings) log.warn(fields, message)
}

/** The plugin; the same function is the default export and the named one, as the official plugins do. */
export const fastifyGracefulTermination = fp(gracefulTermination, {
  fastify: '5.x',
  name: 'fastify-graceful-termination'
})
export default fastifyGracefulTermination
