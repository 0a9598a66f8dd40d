import { InvalidOptionError } from './errors.js'

/** Signals that may start the shutdown: the ones close-with-grace can listen to. */
export const SUPPORTED_SIGNALS = [
  'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'
] as const
export type ShutdownSignal = typeof SUPPORTED_SIGNALS[number]

export interface GracefulTerminationOptions {
  /** Window between SIGTERM and SIGKILL, in ms; the process exits before it ends. Default 30000. */
  gracePeriod?: number
  /** After the shutdown starts, keep serving this long (ms) while readiness answers 503. Default 0. */
  readinessDelay?: number
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
  /** When open WebSockets get a 1001 Going Away close frame: at the drain deadline, or when the drain starts. Default 'at-deadline'. */
  closeWebSockets?: 'at-deadline' | 'on-drain'
  /** Written to every Server-Sent Events stream still open at the drain deadline, before it ends; false for none. */
  sseFinalEvent?: string | false
}

export type ResolvedOptions = Required<Omit<GracefulTerminationOptions, 'maxConcurrency'>> & {
  maxConcurrency: number
}

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
  closeWebSockets: 'at-deadline',
  sseFinalEvent: 'event: shutdown\ndata: {"reason":"the server is shutting down"}\n\n'
}

/** A gracePeriod under this is far more likely seconds than milliseconds. */
const SUSPICIOUSLY_SHORT_GRACE_PERIOD = 1000

/** Warns of valid options that are most likely a mistake. */
export function warnAboutOptions ({ gracePeriod }: ResolvedOptions, log: { warn (obj: object, msg: string): void }): void {
  if (gracePeriod < SUSPICIOUSLY_SHORT_GRACE_PERIOD) {
    log.warn({ gracePeriod }, `gracePeriod is ${gracePeriod} ms: it is in milliseconds, did you mean ${gracePeriod * 1000}?`)
  }
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
const sseEvent: Check<string> = (value, fail) => {
  if (typeof value !== 'string' || !value.endsWith('\n\n') || value.length === 2) {
    fail('an event ending with a blank line ("event: x\\ndata: y\\n\\n")')
  }
  return value as string
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

/** The fail() of a plugin option: a TypeError with the FST_GRACEFUL_INVALID_OPTION code. */
const invalidOption = (name: string, value: unknown): Fail => allowed => {
  throw new InvalidOptionError(name, allowed, formatValue(value))
}

/**
 * Checks every option before the plugin installs anything, so a typo fails at boot
 * with the option, the value and what is allowed, never halfway through a shutdown.
 */
export function resolveOptions (input: unknown = {}): ResolvedOptions {
  const known = Object.keys(DEFAULTS)
  const given = Object.entries(plainObject(input, invalidOption('(options)', input)))
  for (const [key, value] of given) {
    if (!known.includes(key)) invalidOption(key, value)(`one of ${known.join(', ')} (unknown option)`)
  }
  const options: Record<string, unknown> = { ...DEFAULTS, ...Object.fromEntries(given.filter(([, value]) => value !== undefined)) }
  const option = <Value>(name: keyof ResolvedOptions, check: Check<Value>): Value =>
    check(options[name], invalidOption(name, options[name]))

  const gracePeriod = option('gracePeriod', integer(1, MAX_DURATION_MS))
  const readinessDelay = option('readinessDelay', integer(0))
  if (readinessDelay >= gracePeriod) {
    invalidOption('readinessDelay', readinessDelay)(`less than gracePeriod (${gracePeriod})`)
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

  return {
    gracePeriod,
    readinessDelay,
    readyPath,
    healthPath,
    maxConcurrency,
    maxQueue,
    queueTimeout,
    retryAfter: option('retryAfter', integer(0)),
    signals: option('signals', signalList),
    handleSignals: option('handleSignals', boolean),
    closeWebSockets: option('closeWebSockets', oneOf(['at-deadline', 'on-drain'] as const)),
    sseFinalEvent: option('sseFinalEvent', orFalse(sseEvent))
  }
}
