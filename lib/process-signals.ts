import closeWithGrace from 'close-with-grace'
import type { ShutdownSignal } from './options.js'
import { gracePeriodBudget, type Logger, type ShutdownOutcome } from './shutdown.js'

/** An instance that wants the process's signals and errors to shut it down. */
export interface ShutdownParticipant {
  signals: readonly ShutdownSignal[]
  gracePeriod: number
  log: Logger
  shutdown (reason: string, error?: unknown): Promise<ShutdownOutcome>
}

/** Every event close-with-grace listens to unless told to skip it. */
const CLOSE_WITH_GRACE_EVENTS: closeWithGrace.AllEvents[] = [
  'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV',
  'SIGUSR2', 'SIGTERM', 'uncaughtException', 'unhandledRejection', 'beforeExit'
]
const ERROR_EVENTS = new Set<string>(['uncaughtException', 'unhandledRejection'])

/**
 * The process has one set of signal handlers, and close-with-grace exits the process once its
 * callback is done. Two instances that each installed their own would race to exit, the faster
 * cutting the other's drain; so every instance enlists here, and one handler drains them all.
 */
const participants = new Set<ShutdownParticipant>()
let installed: { uninstall (): void } | undefined
let shuttingDown = false

export function enlist (participant: ShutdownParticipant): void {
  participants.add(participant)
  reinstall()
}

export function withdraw (participant: ShutdownParticipant): void {
  participants.delete(participant)
  reinstall()
}

function reinstall (): void {
  // Once the shutdown runs, close-with-grace owns the handlers for a second signal: keep them.
  if (shuttingDown) return
  installed?.uninstall()
  installed = undefined
  const [first] = participants
  if (first === undefined) return

  const everyone = [...participants]
  const signals = new Set<string>(everyone.flatMap(participant => participant.signals))
  const longestGracePeriod = Math.max(...everyone.map(participant => participant.gracePeriod))
  const log = first.log

  installed = closeWithGrace({
    // Each sequence keeps to its own deadlines; this is the backstop for a blocked event loop.
    delay: gracePeriodBudget(longestGracePeriod).exitMs,
    logger: { error: (err: unknown) => log.error({ err }, 'shutdown failed') },
    skip: CLOSE_WITH_GRACE_EVENTS.filter(event => !signals.has(event) && !ERROR_EVENTS.has(event)),
    onSecondSignal: signal => log.error({ signal }, 'second signal during shutdown: exiting at once with code 1'),
    onSecondError: err => log.error({ err }, 'error during shutdown: exiting at once with code 1'),
    onTimeout: delay => log.error({ delayMs: delay }, 'shutdown overran the grace period: exiting with code 1')
  }, async ({ signal, err }) => {
    shuttingDown = true
    const reason = err === undefined ? signal ?? 'unknown' : 'uncaught error'
    const outcomes = await Promise.all([...participants].map(participant => participant.shutdown(reason, err)))
    if (err === undefined && outcomes.some(outcome => !outcome.drained || !outcome.closed)) {
      // close-with-grace exits with code 1 when its callback throws; 0 is kept for a clean drain.
      throw new Error('shutdown did not complete cleanly within the grace period')
    }
  })
}

/** For tests: how many instances the process handlers serve. */
export function enlistedCount (): number {
  return participants.size
}
