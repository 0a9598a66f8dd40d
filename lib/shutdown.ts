import { performance } from 'node:perf_hooks'
import type { Arrivals, ClosingIdle } from './connections.js'
import { publishShutdownPhase, type PhaseFigures, type ShutdownPhase } from './diagnostics.js'
import type { RoutingWatch } from './options.js'
import { DrainTally, type DrainCounts } from './tally.js'
import type { InFlightTracker } from './tracker.js'

export type LifecycleState = 'starting' | 'serving' | 'draining' | 'closing' | 'closed'

/** What the shutdown did to the connections that carried no request at its end. */
export interface ConnectionCounts {
  /** Closed (with a FIN) once nothing was in flight: idle keep-alive, silent, half-sent. */
  closedIdle: number
  /** Destroyed: at the deadline every connection still open, else those whose client kept its side open. */
  destroyed: number
}

export interface ShutdownOutcome extends DrainCounts {
  /** What started the shutdown: a signal name, 'uncaught error', or the reason given to shutdown(). */
  reason: string
  /** Every request and tracked task finished before the drain deadline. */
  drained: boolean
  /** fastify.close() finished (its onClose hooks included) within the time left for it. */
  closed: boolean
  elapsedMs: number
  connections: ConnectionCounts
}

export interface Logger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

export interface ShutdownOptions {
  /** What the sequence reads of the tracker: it waits on it and reports it, never changes it. */
  tracker: Pick<InFlightTracker, 'activeRequests' | 'pendingTasks' | 'pending' | 'whenIdle' | 'idle'>
  gracePeriod: number
  /** Fixed, or until the traffic shows that routing has stopped. */
  readinessDelay: number | Required<RoutingWatch>
  log: Logger
  connections: ConnectionControl
  /** Event streams and WebSockets: ended the way their protocols allow before a cut. */
  longLived: LongLivedControl
  /** Close WebSockets with 1001 as soon as the drain starts, not at its deadline. */
  closeWebSocketsOnDrain: boolean
  /** fastify.close(): runs onClose hooks once the server's last connection is gone. */
  closeApp (): Promise<void>
  /** True while startup work is pending: nothing routes to a replica that was never ready. */
  starting (): boolean
}

/** What the sequence does to event streams and WebSockets. */
export interface LongLivedControl {
  /** Ends every Server-Sent Events stream in flight with its final event; returns how many. */
  endEventStreams (): number
  /** Sends every open WebSocket 1001 Going Away; one promise per socket, settled once it closed. */
  closeWebSockets (): Array<Promise<unknown>>
}

/** What the sequence does to the connections, in the order it does it. */
export interface ConnectionControl {
  /** Counts, from now on, the new connections that bring traffic; the object it returns stays current. */
  noteArrivals (): Arrivals
  /** Each connection closes after its last response from now on. */
  retire (): void
  /**
   * No new connection is accepted; requests on open ones are still served. Resolves once the
   * listeners are closed, with how many connections were accepted while they closed.
   */
  stopAccepting (): Promise<number>
  /** Resolves once what had arrived on the connections has been read (its requests have started). */
  readArrived (): Promise<void>
  /** Closes every connection that carries no request: how many, and when their FINs have left. */
  closeIdle (): ClosingIdle
  /** Resolves once every connection is closed. */
  allClosed (): Promise<void>
  /** Destroys every connection still open; returns how many. */
  destroyAll (): number
}

/** The longest an exit waits for the last log lines to be written. */
const MAX_FLUSH_MS = 200

/**
 * How the grace period is spent. The drain may use all but a reserve; half the reserve is for
 * fastify.close() and its onClose hooks, the other half is headroom for the process to exit
 * before the platform's SIGKILL (its clock and ours never agree to the millisecond). The process
 * exits by exitMs whatever happens; an exit first waits up to flushMs for its last log lines.
 */
export function gracePeriodBudget (gracePeriod: number): { drainMs: number, closeMs: number, exitMs: number, flushMs: number } {
  const reserve = Math.min(2000, Math.ceil(gracePeriod / 5))
  return {
    drainMs: gracePeriod - reserve,
    closeMs: Math.floor(reserve / 2),
    exitMs: gracePeriod - Math.floor(reserve / 4),
    flushMs: Math.min(MAX_FLUSH_MS, Math.floor(reserve / 8))
  }
}

/** A routing watch under way: its settings, and the new connections counted since the signal. */
interface RoutingWatchInProgress { watch: Required<RoutingWatch>, arrivals: Arrivals }

interface Timer { elapsed: Promise<void>, cancel (): void }

function startTimer (ms: number): Timer {
  let handle: NodeJS.Timeout | undefined
  const elapsed = new Promise<void>(resolve => { handle = setTimeout(resolve, ms) })
  return { elapsed, cancel: () => clearTimeout(handle) }
}

/**
 * The shutdown, from the first signal to the closed instance (README, "The shutdown sequence").
 * It decides when; what it is given does the work, so it runs without a server or a process.
 */
export class ShutdownSequence {
  #state: LifecycleState = 'serving'
  #accepting = true
  #deadline: number | undefined = undefined
  #reason = ''
  readonly #abort = new AbortController()
  readonly #timers = new Set<Timer>()
  readonly #options: ShutdownOptions
  #outcome: Promise<ShutdownOutcome> | undefined
  /** Counts the requests and tasks of the drain; admission tells it how each request ended. */
  readonly tally = new DrainTally()

  constructor (options: ShutdownOptions) {
    this.#options = options
  }

  get state (): LifecycleState { return this.#state }

  /** Aborted when draining starts, so long-lived handlers can end cleanly. */
  get signal (): AbortSignal { return this.#abort.signal }

  /** When the drain ends, in epoch milliseconds (Date.now()); undefined until it starts. */
  get deadline (): number | undefined { return this.#deadline }

  /** Starts the sequence once; every later call returns the same outcome. */
  start (reason: string): Promise<ShutdownOutcome> {
    this.#outcome ??= this.#run(reason)
    return this.#outcome
  }

  /** fastify.close() began (preClose): called directly, not through start(), it aborts the signal. */
  closeStarted (): void {
    if (this.#state !== 'serving') return
    this.#state = 'closing'
    this.#abort.abort(new Error('fastify.close() called'))
    this.#options.log.info({ activeRequests: this.#options.tracker.activeRequests }, 'fastify.close() called: closing without the graceful drain')
  }

  closed (): void {
    this.#state = 'closed'
    for (const timer of this.#timers) timer.cancel()
  }

  async #run (reason: string): Promise<ShutdownOutcome> {
    const { tracker, log, gracePeriod, readinessDelay } = this.#options
    const startedAt = performance.now()
    const elapsedMs = (): number => Math.round(performance.now() - startedAt)
    const budget = gracePeriodBudget(gracePeriod)

    if (this.#state !== 'serving') {
      // Closed directly before a signal came: nothing to drain, only to report.
      return { reason, drained: true, closed: this.#state === 'closed', elapsedMs: 0, ...this.tally.stop(0, 0), connections: { closedIdle: 0, destroyed: 0 } }
    }
    this.#state = 'draining'
    this.#reason = reason
    // Set before the signal aborts: a handler that wakes on it can plan with the deadline.
    const deadline = this.#deadline = Date.now() + budget.drainMs
    this.tally.start(tracker.activeRequests, tracker.pendingTasks)
    this.#abort.abort(new Error(`shutting down: ${reason}`))
    log.info({
      reason,
      activeRequests: tracker.activeRequests,
      pendingTasks: tracker.pendingTasks,
      gracePeriod,
      readinessDelay,
      drainDeadlineMs: budget.drainMs
    }, 'shutdown started: readiness now answers 503')
    publishShutdownPhase(() => ({ ...this.#figures('started', elapsedMs), deadline }))
    // Counting starts with the signal: what arrives from now on is what still routes here. A replica
    // that never was ready was never routed to: it stops accepting at once.
    const delay = this.#options.starting()
      ? 0
      : typeof readinessDelay === 'number' ? readinessDelay : { watch: readinessDelay, arrivals: this.#options.connections.noteArrivals() }
    this.#options.connections.retire()
    if (this.#options.closeWebSocketsOnDrain) {
      const webSockets = this.#options.longLived.closeWebSockets().length
      if (webSockets > 0) log.info({ webSockets }, 'sent 1001 Going Away to every open WebSocket')
    }

    const drainDeadline = this.#timer(budget.drainMs)
    const drained = await Promise.race([
      this.#delayThenDrain(delay, startedAt, elapsedMs),
      drainDeadline.elapsed.then(() => false)
    ])
    drainDeadline.cancel()
    await this.#stopAccepting(elapsedMs)

    // What is still in flight now is cut: the counts are final.
    const counts = this.tally.stop(tracker.activeRequests, tracker.pendingTasks)
    const connections: ConnectionCounts = { closedIdle: 0, destroyed: 0 }
    let closeBudgetMs = budget.closeMs
    if (drained) {
      // Each client closes its side once it reads the FIN; that handshake takes its time from
      // fastify.close()'s, which would otherwise destroy the connections with what they still bring.
      const closingStartedAt = performance.now()
      const closing = this.#timer(Math.floor(budget.closeMs / 2))
      const idle = this.#options.connections.closeIdle()
      connections.closedIdle = idle.closed
      await Promise.race([idle.finSent, closing.elapsed])
      log.info({ elapsedMs: elapsedMs(), closedIdleConnections: idle.closed }, 'drained: no request or tracked task in flight')
      publishShutdownPhase(() => ({ ...this.#figures('drained', elapsedMs), ...counts }))
      await Promise.race([this.#options.connections.allClosed(), closing.elapsed])
      closing.cancel()
      closeBudgetMs -= Math.round(performance.now() - closingStartedAt)
      const keptOpen = connections.destroyed = this.#options.connections.destroyAll()
      if (keptOpen > 0) log.info({ elapsedMs: elapsedMs(), keptOpen }, 'destroyed the connections whose clients kept their side open')
    } else {
      const pending = tracker.pending()
      log.error({ elapsedMs: elapsedMs(), activeRequests: tracker.activeRequests, pendingTasks: tracker.pendingTasks },
        'drain deadline reached: cutting the work still in flight')
      for (const work of pending) log.error(work, `cut ${work.kind} still in flight at the drain deadline`)
      publishShutdownPhase(() => ({ ...this.#figures('deadline', elapsedMs), ...counts }))
      // The closing handshakes take their time from fastify.close()'s.
      const endingStartedAt = performance.now()
      await this.#endLongLived(Math.floor(budget.closeMs / 2))
      closeBudgetMs -= Math.round(performance.now() - endingStartedAt)
      connections.destroyed = this.#options.connections.destroyAll()
    }
    // The figures of the last line the sequence logs, whichever it is.
    const figures = { ...counts, connections }

    if (this.#state === 'draining') this.#state = 'closing'
    const closeDeadline = this.#timer(closeBudgetMs)
    const closing = await Promise.race([
      this.#options.closeApp().then(() => 'closed' as const, (err: unknown) => {
        log.error({ err, elapsedMs: elapsedMs(), ...figures }, 'fastify.close() failed')
        return 'failed' as const
      }),
      closeDeadline.elapsed.then(() => 'overran' as const)
    ])
    closeDeadline.cancel()
    const closed = closing === 'closed'
    if (closed) {
      this.#state = 'closed'
      log.info({ elapsedMs: elapsedMs(), drained, ...figures }, 'shutdown complete')
    } else if (closing === 'overran') {
      log.error({ elapsedMs: elapsedMs(), closeBudgetMs, ...figures }, 'fastify.close() did not finish in time')
    }
    const outcome: ShutdownOutcome = { reason, drained, closed, elapsedMs: elapsedMs(), ...figures }
    publishShutdownPhase(() => ({ ...this.#figures('closed', elapsedMs), ...outcome }))
    return outcome
  }

  /** What every message on the shutdown channel says, as of now. */
  #figures<Phase extends ShutdownPhase> (phase: Phase, elapsedMs: () => number): PhaseFigures<Phase> {
    const { tracker } = this.#options
    return { phase, reason: this.#reason, elapsedMs: elapsedMs(), activeRequests: tracker.activeRequests, pendingTasks: tracker.pendingTasks }
  }

  /**
   * At the deadline, what the protocols allow before a cut: event streams get their final event
   * and end, WebSockets get 1001 Going Away and up to waitMs for their closing handshake.
   */
  async #endLongLived (waitMs: number): Promise<void> {
    const { longLived, log } = this.#options
    const eventStreams = longLived.endEventStreams()
    const webSockets = longLived.closeWebSockets()
    if (eventStreams + webSockets.length === 0) return
    log.error({ eventStreams, webSockets: webSockets.length }, 'ending event streams with their final event and WebSockets with 1001 Going Away')
    if (webSockets.length > 0) await Promise.race([Promise.all(webSockets), this.#timer(waitMs).elapsed])
  }

  async #delayThenDrain (delay: number | RoutingWatchInProgress, startedAt: number, elapsedMs: () => number): Promise<true> {
    if (typeof delay === 'number') {
      if (delay > 0) await this.#timer(delay).elapsed
      await this.#stopAccepting(elapsedMs)
    } else {
      const routing = await this.#untilRoutingStops(delay, startedAt)
      await this.#stopAccepting(elapsedMs, { routing, newConnections: delay.arrivals.count })
    }
    await this.#idle()
    return true
  }

  /**
   * Until nothing is in flight, and still nothing once the event loop has read what had arrived
   * by then: a request can wait unread in the kernel while the last response goes out.
   */
  async #idle (): Promise<void> {
    const { tracker, connections } = this.#options
    do {
      await tracker.whenIdle()
      await connections.readArrived()
    } while (!tracker.idle)
  }

  /**
   * Waits until no new connection has brought traffic for quietPeriod (the platform has stopped
   * routing here), no sooner than minimum and no later than maximum after the signal. Says which.
   */
  async #untilRoutingStops ({ watch: { quietPeriod, minimum, maximum }, arrivals }: RoutingWatchInProgress, startedAt: number): Promise<'stopped' | 'maximum reached'> {
    for (;;) {
      const now = performance.now()
      const elapsed = now - startedAt
      if (elapsed >= maximum) return 'maximum reached'
      const wait = Math.max(minimum - elapsed, quietPeriod - (now - Math.max(arrivals.lastAt, startedAt)))
      if (wait <= 0) return 'stopped'
      await this.#timer(Math.ceil(Math.min(wait, maximum - elapsed))).elapsed
    }
  }

  async #stopAccepting (elapsedMs: () => number, why: object = {}): Promise<void> {
    if (!this.#accepting) return
    this.#accepting = false
    const acceptedWhileClosing = await this.#options.connections.stopAccepting()
    this.#options.log.info({
      elapsedMs: elapsedMs(),
      ...why,
      acceptedWhileClosing,
      activeRequests: this.#options.tracker.activeRequests,
      pendingTasks: this.#options.tracker.pendingTasks
    }, 'stopped accepting connections; waiting for in-flight work')
    publishShutdownPhase(() => ({ ...this.#figures('stopped-accepting', elapsedMs), acceptedWhileClosing }))
  }

  /** A timer that closed() cancels, so a closed instance leaves nothing scheduled. */
  #timer (ms: number): Timer {
    const timer = startTimer(ms)
    this.#timers.add(timer)
    const forget = (): boolean => this.#timers.delete(timer)
    timer.elapsed.then(forget, forget)
    return {
      elapsed: timer.elapsed,
      cancel: () => { timer.cancel(); forget() }
    }
  }
}
