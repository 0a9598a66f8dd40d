import closeWithGrace from 'close-with-grace'
import { flushOutput } from './log.js'
import type { ShutdownSignal } from './options.js'
import { pm2 } from './pm2.js'
import { gracePeriodBudget, type Logger, type ShutdownOutcome } from './shutdown.js'

/** An instance that wants the process's signals and errors to shut it down. */
export interface ShutdownParticipant {
  signals: readonly ShutdownSignal[]
  /** Uncaught exceptions and unhandled rejections shut it down too; false leaves them to the app. */
  handleErrors: boolean
  /** PM2 runs the process: its 'shutdown' message (shutdown_with_message) is a signal like the others. */
  shutdownMessage: boolean
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

/** The reason a shutdown started by PM2's 'shutdown' message gives, as a signal gives its name. */
export const SHUTDOWN_MESSAGE_REASON = 'shutdown message'

/**
 * The process has one set of signal handlers, and close-with-grace exits the process once its
 * callback is done. Two instances that each installed their own would race to exit, the faster
 * cutting the other's drain; so every instance registers here, and one handler drains them all.
 */
const participants = new Set<ShutdownParticipant>()
let installed: { close (): void, uninstall (): void } | undefined
let shuttingDown = false
let exiting: Promise<never> | undefined
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

/** Every exit the plugin makes: the first one, once what was logged is written (for at most flushMs). */
function exit (code: number, flushMs: number): Promise<never> {
  exiting ??= flushOutput(flushMs).then(() => process.exit(code))
  return exiting
}

/**
 * close-with-grace calls process.exit(1) as soon as its onSecondSignal, onSecondError, onTimeout
 * or logger.error returns: that one call goes through exit(), so the line that says why is written.
 */
function flushBeforeCloseWithGraceExits (flushMs: number): void {
  const processExit = process.exit
  process.exit = (() => {
    process.exit = processExit
    exit(1, flushMs)
  }) as typeof process.exit
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
  // One instance that wants the errors is enough: once one shuts down, the process exits.
  const handleErrors = everyone.some(participant => participant.handleErrors)
  const budget = gracePeriodBudget(Math.max(...everyone.map(participant => participant.gracePeriod)))
  const log = first.log
  const exitAtOnce = (fields: object, message: string): void => {
    // An exit already under way ends within flushMs: it stands, and a line now would not be written.
    if (exiting === undefined) log.error(fields, message)
    flushBeforeCloseWithGraceExits(budget.flushMs)
  }

  const handlers = closeWithGrace({
    // Each sequence keeps to its own deadlines; this is the backstop for a blocked event loop.
    delay: budget.exitMs - budget.flushMs,
    logger: { error: (err: unknown) => exitAtOnce({ err }, 'exiting with code 1: the shutdown failed') },
    skip: CLOSE_WITH_GRACE_EVENTS.filter(event => ERROR_EVENTS.has(event) ? !handleErrors : !signals.has(event)),
    onSecondSignal: signal => exitAtOnce({ signal }, 'second signal during shutdown: exiting at once with code 1'),
    onSecondError: err => exitAtOnce({ err }, 'error during shutdown: exiting at once with code 1'),
    onTimeout: delay => exitAtOnce({ delayMs: delay }, 'shutdown overran the grace period: exiting with code 1')
  }, async ({ signal, err, manual }) => {
    shuttingDown = true
    await exit(await shutDown({ signal, err, manual }, log), budget.flushMs)
  })

  const stopListening = everyone.some(participant => participant.shutdownMessage)
    ? pm2.onShutdownMessage(() => {
      if (shuttingDown) {
        if (exiting === undefined) log.error({ signal: SHUTDOWN_MESSAGE_REASON }, 'second signal during shutdown: exiting at once with code 1')
        exit(1, budget.flushMs)
      } else {
        handlers.close()
      }
    })
    : undefined
  installed = {
    close: handlers.close,
    uninstall () {
      handlers.uninstall()
      stopListening?.()
    }
  }
}

/** Shuts every listening instance down; resolves with the exit code. */
async function shutDown ({ signal, err, manual }: { signal?: string, err?: unknown, manual?: boolean }, log: Logger): Promise<number> {
  if (err !== undefined) log.error({ err }, 'uncaught error: shutting down, then exiting with code 1')
  // close() is called for the 'shutdown' message, and by failProcess() with its reason.
  const reason = err !== undefined ? 'uncaught error' : manual === true ? failure ?? SHUTDOWN_MESSAGE_REASON : signal ?? 'unknown'
  const listening = [...participants].filter(participant => participant.listening())
  if (listening.length === 0 && failure === undefined) {
    log.info({ signal: reason }, 'stopped while starting: nothing was in flight')
    return err === undefined ? 0 : 1
  }
  const outcomes = await Promise.all(listening.map(participant => participant.shutdown(reason)))
  if (err !== undefined) return 1
  const cause = failure ?? failureOf(outcomes)
  if (cause !== undefined) {
    log.error({}, `exiting with code 1: ${cause}`)
    return 1
  }
  const appExitCode = Number(process.exitCode ?? 0)
  if (appExitCode !== 0) log.info({ exitCode: appExitCode }, 'exiting with the exit code the app set')
  return appExitCode
}
