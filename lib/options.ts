import type { FastifyRequest } from 'fastify'
import type { HealthCheck } from './checks.js'
import { InvalidOptionError } from './errors.js'
import { fitToWindow, type Platform, type Warning } from './platform.js'

/** Signals that may start the shutdown: the ones close-with-grace can listen to. */
export const SUPPORTED_SIGNALS = [
  'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'
] as const
export type ShutdownSignal = typeof SUPPORTED_SIGNALS[number]

/**
 * Keep accepting after the signal until routing has stopped, as the traffic shows it: until no new
 * connection has brought a request (probes aside) for quietPeriod, after minimum, before maximum.
 * Each is derived from gracePeriod when left out.
 */
export interface RoutingWatch {
  quietPeriod?: number
  minimum?: number
  maximum?: number
}

/** An SSE event (ending with a blank line) or false; a function makes one for each stream's request. */
export type SseFinalEvent = string | false | ((request: FastifyRequest) => string | false)

export interface GracefulTerminationOptions {
  /** Window between SIGTERM and SIGKILL, in ms; the process exits before it ends. Default: the platform's, else 30000. */
  gracePeriod?: number
  /**
   * After the shutdown starts, keep serving while readiness answers 503: this many ms, or until
   * routing has stopped (a RoutingWatch). Default: a RoutingWatch on Kubernetes, else 0.
   */
  readinessDelay?: number | RoutingWatch
  /** Readiness route, or false for none. Default '/ready'. */
  readyPath?: string | false
  /** Liveness route, or false for none. Default '/health'. */
  healthPath?: string | false
  /** At most this many requests in handlers at once (Cerebrium's replica_concurrency). Default unlimited. */
  maxConcurrency?: number
  /** Requests that may wait for a slot, in arrival order; past it, 503 at once. Needs maxConcurrency. Default 0. */
  maxQueue?: number
  /** How long (ms) a request may wait for a slot before a 503; 0 for no limit. Needs maxQueue. Default 0. */
  queueTimeout?: number
  /** Seconds sent in Retry-After with every 503 this plugin sends. Default 1. */
  retryAfter?: number
  /** Signals that start the shutdown; a second one exits at once. Default ['SIGTERM', 'SIGINT']. */
  signals?: ShutdownSignal[]
  /** false: install no process handlers; call fastify.graceful.shutdown() yourself. Default true. */
  handleSignals?: boolean
  /**
   * false: leave uncaughtException and unhandledRejection to the app (its own handler, its
   * telemetry); the signals are still handled. Default true: logged, drained, exit 1.
   */
  handleErrors?: boolean
  /** When open WebSockets get a 1001 Going Away close frame: at the drain deadline, or when the drain starts. Default 'at-deadline'. */
  closeWebSockets?: 'at-deadline' | 'on-drain'
  /**
   * Written to every Server-Sent Events stream still open at the drain deadline, before it ends;
   * false for none. A function makes it from the stream's request: a resume token, say.
   */
  sseFinalEvent?: SseFinalEvent
  /** Checks the replica cannot serve without (a database, say): one that fails makes /ready 503. Default none. */
  readinessChecks?: Record<string, HealthCheck>
  /** Checks that only a restart cures (a wedged GPU, say): one that fails makes /health 503. Default none. */
  livenessChecks?: Record<string, HealthCheck>
  /** A check still running after this many ms has failed. Default 1000. */
  checkTimeout?: number
  /** A check's result is reused for this many ms, however often the probes come. Default 1000. */
  checkInterval?: number
}

export type ResolvedOptions = Required<Omit<GracefulTerminationOptions, 'maxConcurrency' | 'readinessDelay'>> & {
  maxConcurrency: number
  readinessDelay: number | Required<RoutingWatch>
}

export const DEFAULT_SSE_FINAL_EVENT = 'event: shutdown\ndata: {"reason":"the server is shutting down"}\n\n'

export const DEFAULTS: ResolvedOptions = {
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
  sseFinalEvent: DEFAULT_SSE_FINAL_EVENT,
  readinessChecks: {},
  livenessChecks: {},
  checkTimeout: 1000,
  checkInterval: 1000
}

/** A gracePeriod under this is far more likely seconds than milliseconds. */
const SUSPICIOUSLY_SHORT_GRACE_PERIOD = 1000

/** The settings the platform shapes, whose source the start-up line names. */
export type PlannedSetting = 'gracePeriod' | 'readinessDelay' | 'maxConcurrency' | 'signals'

/**
 * Set by cerebriumOptions() on the options it returns, so the plugin can say which came from the
 * toml or the environment; an enumerable symbol, so a spread of those options keeps it.
 */
export const kSettingSources: unique symbol = Symbol.for('fastify-graceful-termination.settingSources') as never
export type SettingSources = Partial<Record<PlannedSetting, string>>

/** The options in force, where the platform-shaped ones came from, and what to warn of at start. */
export interface Resolution {
  options: ResolvedOptions
  platform: Platform | undefined
  sources: Record<PlannedSetting, string>
  warnings: Warning[]
}

/** A value as an error message shows it: strings quoted, so "30" and 30 read differently. */
export function formatValue (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  if (typeof value === 'bigint') return `${value}n`
  try {
    return JSON.stringify(value) ?? typeof value
  } catch {
    return typeof value
  }
}

/**
 * The checks every setting goes through, whatever it comes from (options, cerebrium.toml, the
 * environment): each returns the value it accepts, or calls fail() with what is allowed, and
 * the caller's fail() throws the error of its source, naming the setting and the value.
 */
export type Fail = (allowed: string) => never
export type Check<Value> = (value: unknown, fail: Fail) => Value

/** Node's longest timer: a longer delay fires at once, so a longer duration is an error. */
export const MAX_DURATION_MS = 2_147_483_647

export const integer = (min: number, max = Infinity): Check<number> => (value, fail) => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(max === Infinity ? `an integer >= ${min}` : `an integer from ${min} to ${max}`)
  }
  return value as number
}

/** An integer written as plain decimal digits: an environment variable, a command-line value. */
export const decimalInteger = (min: number, max: number): Check<number> => (value, fail) =>
  integer(min, max)(typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN, fail)

export const routePath: Check<string> = (value, fail) => {
  if (typeof value !== 'string' || !value.startsWith('/')) fail('a path starting with "/"')
  return value as string
}

const orFalse = <Value>(check: Check<Value>): Check<Value | false> => (value, fail) =>
  value === false ? false : check(value, allowed => fail(`${allowed} or false`))

const oneOf = <Value extends string>(allowed: readonly Value[]): Check<Value> => (value, fail) => {
  if (!allowed.includes(value as Value)) fail(`one of ${allowed.map(formatValue).join(', ')}`)
  return value as Value
}

/** One or more complete SSE lines, ending with the blank line that ends an event. */
export const isSseEvent = (value: unknown): value is string =>
  typeof value === 'string' && value.endsWith('\n\n') && value.length > 2

const sseFinalEvent: Check<SseFinalEvent> = (value, fail) => {
  if (value !== false && typeof value !== 'function' && !isSseEvent(value)) {
    fail('an event ending with a blank line ("event: x\\ndata: y\\n\\n"), a function of the request returning one, or false')
  }
  return value as SseFinalEvent
}

const signalList: Check<ShutdownSignal[]> = (value, fail) => {
  if (!Array.isArray(value) || value.length === 0 || !value.every(signal => SUPPORTED_SIGNALS.includes(signal))) {
    fail(`a non-empty array of ${SUPPORTED_SIGNALS.join(', ')}`)
  }
  return [...new Set(value as ShutdownSignal[])]
}

const plainObject: Check<Record<string, unknown>> = (value, fail) =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : fail('an object')

const boolean: Check<boolean> = (value, fail) => typeof value === 'boolean' ? value : fail('a boolean')

const checkFunctions: Check<Record<string, HealthCheck>> = (value, fail) => {
  const checks = plainObject(value, () => fail('an object of named check functions'))
  if (!Object.values(checks).every(check => typeof check === 'function')) fail('an object of named check functions')
  return checks as Record<string, HealthCheck>
}

/** The fail() of a plugin option: a TypeError with the FST_GRACEFUL_INVALID_OPTION code. */
const invalidOption = (name: string, value: unknown): Fail => allowed => {
  throw new InvalidOptionError(name, allowed, formatValue(value))
}

/** The fail() of a setting inside an option: readinessDelay.maximum, say. */
const invalidPart = (name: string, part: string, value: unknown): Fail => invalidOption(`${name}.${part}`, value)

/**
 * The RoutingWatch in force: what was given, the rest derived from gracePeriod. A quiet second
 * outlasts the gaps between new connections of any steady traffic; a minimum of 2 s covers the
 * usual propagation of an endpoint's removal (kube-proxy syncs at most once a second); half the
 * grace period as the maximum leaves the other half to the requests accepted until then.
 */
function routingWatch (input: Record<string, unknown>, gracePeriod: number): Required<RoutingWatch> {
  const allowed = ['quietPeriod', 'minimum', 'maximum']
  for (const [key, value] of Object.entries(input)) {
    if (!allowed.includes(key)) invalidPart('readinessDelay', key, value)(`one of ${allowed.join(', ')} (unknown setting)`)
  }
  const part = (key: string, fallback: number, max = MAX_DURATION_MS): number =>
    input[key] === undefined ? Math.min(fallback, max) : integer(0, max)(input[key], invalidPart('readinessDelay', key, input[key]))
  const maximum = part('maximum', Math.floor(gracePeriod / 2), gracePeriod - 1)
  return {
    quietPeriod: part('quietPeriod', Math.min(1000, Math.round(gracePeriod / 10)), maximum),
    minimum: part('minimum', Math.min(2000, Math.round(gracePeriod / 10)), maximum),
    maximum
  }
}

/**
 * Checks every option before the plugin installs anything, so a typo fails at boot
 * with the option, the value and what is allowed, never halfway through a shutdown.
 * What was not given comes from the platform the process runs on, where it fixes it.
 */
export function resolveOptions (input: unknown = {}, platform?: Platform): Resolution {
  const known = Object.keys(DEFAULTS)
  const given = Object.entries(plainObject(input, invalidOption('(options)', input)))
  for (const [key, value] of given) {
    if (!known.includes(key)) invalidOption(key, value)(`one of ${known.join(', ')} (unknown option)`)
  }
  const explicit = Object.fromEntries(given.filter(([, value]) => value !== undefined))
  const options: Record<string, unknown> = { ...DEFAULTS, ...explicit }
  const option = <Value>(name: keyof ResolvedOptions, check: Check<Value>): Value =>
    check(options[name], invalidOption(name, options[name]))
  const givenSources = (input as { [kSettingSources]?: SettingSources })[kSettingSources] ?? {}
  const sourceOf = (name: PlannedSetting, fallback: string): string => name in explicit ? givenSources[name] ?? 'option' : fallback
  const warnings: Warning[] = []

  let gracePeriod = 'gracePeriod' in explicit ? option('gracePeriod', integer(1, MAX_DURATION_MS)) : platform?.window ?? DEFAULTS.gracePeriod
  const gracePeriodSource = sourceOf('gracePeriod', platform?.windowSource ?? 'default')
  if (gracePeriodSource === 'option' && gracePeriod < SUSPICIOUSLY_SHORT_GRACE_PERIOD) {
    warnings.push({ fields: { gracePeriod }, message: `gracePeriod is ${gracePeriod} ms: it is in milliseconds, did you mean ${gracePeriod * 1000}?` })
  }
  if (platform !== undefined) {
    const fitted = fitToWindow(platform, gracePeriod, gracePeriodSource)
    gracePeriod = fitted.gracePeriod
    if (fitted.warning !== undefined) warnings.push(fitted.warning)
  }

  const readinessDelay = 'readinessDelay' in explicit
    ? option('readinessDelay', (value, fail) => typeof value === 'object' && value !== null && !Array.isArray(value)
      ? routingWatch(value as Record<string, unknown>, gracePeriod)
      : integer(0)(value, allowed => fail(`${allowed} or a routing watch ({ quietPeriod, minimum, maximum })`)))
    : platform?.routesAfterSignal === true ? routingWatch({}, gracePeriod) : 0
  if (typeof readinessDelay === 'number' && readinessDelay >= gracePeriod) {
    invalidOption('readinessDelay', readinessDelay)(`less than gracePeriod (${gracePeriod}, from ${gracePeriodSource})`)
  }
  const maxConcurrency = options.maxConcurrency === Infinity ? Infinity : option('maxConcurrency', integer(1))
  // A queue setting that can never apply is a mistake to report at boot, not to ignore.
  const maxQueue = option('maxQueue', integer(0))
  if (maxQueue > 0 && maxConcurrency === Infinity) {
    invalidOption('maxQueue', maxQueue)('0 while maxConcurrency is unlimited (set maxConcurrency to queue)')
  }
  const queueTimeout = option('queueTimeout', integer(0, MAX_DURATION_MS))
  if (queueTimeout > 0 && maxQueue === 0) {
    invalidOption('queueTimeout', queueTimeout)('0 while maxQueue is 0 (no request ever waits)')
  }
  const readyPath = option('readyPath', orFalse(routePath))
  const healthPath = option('healthPath', orFalse(routePath))
  if (readyPath !== false && readyPath === healthPath) {
    invalidOption('healthPath', healthPath)(`a path other than readyPath (${readyPath}) or false`)
  }
  const signals = option('signals', signalList)
  const handleSignals = option('handleSignals', boolean)
  const handleErrors = option('handleErrors', boolean)
  if (handleErrors && !handleSignals && 'handleErrors' in explicit) {
    invalidOption('handleErrors', handleErrors)('false while handleSignals is false (no process handler is installed)')
  }
  if (platform !== undefined && handleSignals && !signals.includes(platform.stopSignal)) {
    warnings.push({
      fields: { signals, platform: platform.name, stopSignal: platform.stopSignal },
      message: `signals do not include ${platform.stopSignal}, the signal ${platform.name} stops the process with: the drain will never start`
    })
  }

  return {
    options: {
      gracePeriod,
      readinessDelay,
      readyPath,
      healthPath,
      maxConcurrency,
      maxQueue,
      queueTimeout,
      retryAfter: option('retryAfter', integer(0)),
      signals,
      handleSignals,
      handleErrors,
      closeWebSockets: option('closeWebSockets', oneOf(['at-deadline', 'on-drain'] as const)),
      sseFinalEvent: option('sseFinalEvent', sseFinalEvent),
      readinessChecks: option('readinessChecks', checkFunctions),
      livenessChecks: option('livenessChecks', checkFunctions),
      checkTimeout: option('checkTimeout', integer(1, MAX_DURATION_MS)),
      checkInterval: option('checkInterval', integer(0, MAX_DURATION_MS))
    },
    platform,
    sources: {
      gracePeriod: gracePeriodSource,
      readinessDelay: sourceOf('readinessDelay', platform?.routesAfterSignal === true ? `${platform.name}: routing stops after the signal` : 'default'),
      maxConcurrency: sourceOf('maxConcurrency', 'default'),
      signals: sourceOf('signals', 'default')
    },
    warnings
  }
}
