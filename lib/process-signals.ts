import closeWithGrace from 'close-with-grace'
import type { ShutdownSignal } from './options.js'
import { gracePeriodBudget, type Logger, type ShutdownOutcome } from './shutdown.js'

/** An instance that wants the process's signals and errors to shut it down. */
export interface ShutdownParticipant {
  signals: readonly ShutdownSignal[]
  gracePeriod: number
  log: Logger
  /** False until the app listens: before that nothing can be in flight. */
  listening (): boolean
  shutdown (reason: string): Promise<ShutdownOutcome>
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
 * cutting the other's drain; so every instance registers here, and one handler drains them all.
 */
const participants = new Set<ShutdownParticipant>()
let installed: { close (): void, uninstall (): void } | undefined
let shuttingDown = false
/** Why the process must exit 1 after a shutdown no signal started (startup work that failed). */
let failure: string | undefined

/** Lets the process's signals and uncaught errors shut this instance down; returns the way out. */
export function handleProcessSignals (participant: ShutdownParticipant): () => void {
  participants.add(participant)
  reinstall()
  return () => {
    participants.delete(participant)
    reinstall()
  }
}

/**
 * Shuts every instance down as a signal would, then exits with code 1: what cannot serve (its
 * startup work failed) ends the same way as what crashed, so the platform starts a fresh replica.
 */
export function failProcess (reason: string): void {
  if (installed === undefined || shuttingDown) return
  failure = reason
  installed.close()
}

/** Why a shutdown must end in exit code 1, if it must. */
function failureOf (outcomes: ShutdownOutcome[]): string | undefined {
  if (outcomes.some(outcome => !outcome.drained)) return 'work was still in flight at the drain deadline'
  if (outcomes.some(outcome => !outcome.closed)) return 'fastify.close() did not complete'
  return undefined
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
    logger: { error: (err: unknown) => log.error({ err }, 'exiting with code 1: the shutdown failed') },
    skip: CLOSE_WITH_GRACE_EVENTS.filter(event => !signals.has(event) && !ERROR_EVENTS.has(event)),
    onSecondSignal: signal => log.error({ signal }, 'second signal during shutdown: exiting at once with code 1'),
    onSecondError: err => log.error({ err }, 'error during shutdown: exiting at once with code 1'),
    onTimeout: delay => log.error({ delayMs: delay }, 'shutdown overran the grace period: exiting with code 1')
  }, async ({ signal, err }) => {
    shuttingDown = true
    // close-with-grace exits with code 1 after an uncaught error, 0 otherwise.
    if (err !== undefined) log.error({ err }, 'uncaught error: shutting down, then exiting with code 1')
    const listening = [...participants].filter(participant => participant.listening())
    if (listening.length === 0 && failure === undefined) {
      log.info({ signal }, 'stopped while starting: nothing was in flight')
      return
    }
    const reason = err !== undefined ? 'uncaught error' : signal ?? failure ?? 'unknown'
    const outcomes = await Promise.all(listening.map(participant => participant.shutdown(reason)))
    if (err !== undefined) return
    const cause = failure ?? failureOf(outcomes)
    if (cause !== undefined) {
      log.error({}, `exiting with code 1: ${cause}`)
      process.exit(1)
    }
    const appExitCode = Number(process.exitCode ?? 0)
    if (appExitCode !== 0) {
      log.info({ exitCode: appExitCode }, 'exiting with the exit code the app set')
      process.exit(appExitCode)
    }
  })
}

/** For tests: how many instances the process handlers serve. */
export function participantCount (): number {
  return participants.size
}
