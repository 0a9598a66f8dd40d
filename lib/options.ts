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
export function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  if (typeof value === 'bigint') return `${value}n`
  try {
    return JSON.stringify(value) ?? typeof value
  } catch {
    return typeof value
  }
}

function fail (name: string, allowed: string, value: unknown): never {
  throw new InvalidOptionError(name, allowed, describe(value))
}

/** Node's longest timer: a longer delay fires at once, so a longer duration is an error. */
export const MAX_DURATION_MS = 2_147_483_647

function integer (name: string, value: unknown, min: number, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, max === Infinity ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value)
  }
  return value
}

function routePath (name: string, value: unknown): string | false {
  if (value === false) return false
  if (typeof value !== 'string' || !value.startsWith('/')) {
    fail(name, 'a path starting with "/" or false', value)
  }
  return value
}

function oneOf<Value extends string> (name: string, value: unknown, allowed: readonly Value[]): Value {
  if (!allowed.includes(value as Value)) fail(name, `one of ${allowed.map(describe).join(', ')}`, value)
  return value as Value
}

/** One or more complete SSE lines, ending with the blank line that ends an event. */
function sseEvent (value: unknown): string | false {
  if (value === false) return false
  if (typeof value !== 'string' || !value.endsWith('\n\n') || value.length === 2) {
    fail('sseFinalEvent', 'an event ending with a blank line ("event: x\\ndata: y\\n\\n") or false', value)
  }
  return value
}

function signalList (value: unknown): ShutdownSignal[] {
  const allowed = `a non-empty array of ${SUPPORTED_SIGNALS.join(', ')}`
  if (!Array.isArray(value) || value.length === 0) fail('signals', allowed, value)
  for (const signal of value) {
    if (!SUPPORTED_SIGNALS.includes(signal)) fail('signals', allowed, value)
  }
  return [...new Set(value as ShutdownSignal[])]
}

/**
 * Checks every option before the plugin installs anything, so a typo fails at boot
 * with the option, the value and what is allowed, never halfway through a shutdown.
 */
export function resolveOptions (input: unknown = {}): ResolvedOptions {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    fail('(options)', 'an object', input)
  }
  const known = new Set(Object.keys(DEFAULTS))
  for (const key of Object.keys(input)) {
    if (!known.has(key)) fail(key, `one of ${[...known].join(', ')} (unknown option)`, (input as Record<string, unknown>)[key])
  }
  const given = Object.fromEntries(
    Object.entries(input).filter(([, value]) => value !== undefined)
  ) as GracefulTerminationOptions
  const options = { ...DEFAULTS, ...given }

  const gracePeriod = integer('gracePeriod', options.gracePeriod, 1, MAX_DURATION_MS)
  const readinessDelay = integer('readinessDelay', options.readinessDelay, 0)
  if (readinessDelay >= gracePeriod) {
    fail('readinessDelay', `less than gracePeriod (${gracePeriod})`, readinessDelay)
  }
  const maxConcurrency = options.maxConcurrency === Infinity
    ? Infinity
    : integer('maxConcurrency', options.maxConcurrency, 1)
  // A queue setting that can never apply is a mistake to report at boot, not to ignore.
  const maxQueue = integer('maxQueue', options.maxQueue, 0)
  if (maxQueue > 0 && maxConcurrency === Infinity) {
    fail('maxQueue', '0 while maxConcurrency is unlimited (set maxConcurrency to queue)', maxQueue)
  }
  const queueTimeout = integer('queueTimeout', options.queueTimeout, 0, MAX_DURATION_MS)
  if (queueTimeout > 0 && maxQueue === 0) {
    fail('queueTimeout', '0 while maxQueue is 0 (no request ever waits)', queueTimeout)
  }
  if (typeof options.handleSignals !== 'boolean') fail('handleSignals', 'a boolean', options.handleSignals)

  const readyPath = routePath('readyPath', options.readyPath)
  const healthPath = routePath('healthPath', options.healthPath)
  if (readyPath !== false && readyPath === healthPath) {
    fail('healthPath', `a path other than readyPath (${readyPath}) or false`, healthPath)
  }

  return {
    gracePeriod,
    readinessDelay,
    readyPath,
    healthPath,
    maxConcurrency,
    maxQueue,
    queueTimeout,
    retryAfter: integer('retryAfter', options.retryAfter, 0),
    signals: signalList(options.signals),
    handleSignals: options.handleSignals,
    closeWebSockets: oneOf('closeWebSockets', options.closeWebSockets, ['at-deadline', 'on-drain']),
    sseFinalEvent: sseEvent(options.sseFinalEvent)
  }
}
