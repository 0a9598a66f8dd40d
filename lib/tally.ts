/**
 * What became of the requests of one drain, from the signal to the end of the drain (when nothing
 * is left in flight, or at its deadline). Every request counted then ends exactly one way:
 * inFlightAtStart + arrived = served + refused + abandoned + cut.
 */
export interface RequestCounts {
  /** In flight when the shutdown started: running, queued, or being refused; probes are never counted. */
  inFlightAtStart: number
  /** Began during the drain: during readinessDelay, or on a connection that was already open. */
  arrived: number
  /** Answered during the drain: the response was written to its end (whatever its status), or a WebSocket session closed. */
  served: number
  /** Answered with one of the plugin's 503s during the drain (its code on the refused channel). */
  refused: number
  /** Ended by the client, which hung up before its response was complete. */
  abandoned: number
  /** Still in flight at the drain deadline, and cut; 0 when the drain finished. */
  cut: number
}

/** The same for track()ed work: inFlightAtStart + started = settled + cut. */
export interface TaskCounts {
  inFlightAtStart: number
  /** Passed to track() during the drain. */
  started: number
  settled: number
  /** Still pending at the drain deadline. */
  cut: number
}

/** The counts of the drain, as its end and the outcome report them. */
export interface DrainCounts {
  requests: RequestCounts
  tasks: TaskCounts
}

/** How a request that ended during the drain ended. */
export type RequestEnding = 'served' | 'refused' | 'abandoned'

/**
 * Counts the drain while it runs. What arrived and what settled are derived: each request is
 * counted once when it ends, and what has not ended by the drain's end is what it cut.
 */
export class DrainTally {
  #counting = false
  #requestsAtStart = 0
  #tasksAtStart = 0
  #tasksStarted = 0
  readonly #endings: Record<RequestEnding, number> = { served: 0, refused: 0, abandoned: 0 }

  /** True from the start of the drain to its end: a request that ends meanwhile is to be counted. */
  get counting (): boolean { return this.#counting }

  start (requestsInFlight: number, tasksPending: number): void {
    this.#counting = true
    this.#requestsAtStart = requestsInFlight
    this.#tasksAtStart = tasksPending
  }

  ended (ending: RequestEnding): void {
    this.#endings[ending]++
  }

  /** A task passed to track(): counted while the drain is. */
  taskStarted (): void {
    if (this.#counting) this.#tasksStarted++
  }

  /** The drain is over, with this much still in flight: the counts, final. */
  stop (requestsInFlight: number, tasksPending: number): DrainCounts {
    this.#counting = false
    const { served, refused, abandoned } = this.#endings
    return {
      requests: {
        inFlightAtStart: this.#requestsAtStart,
        arrived: served + refused + abandoned + requestsInFlight - this.#requestsAtStart,
        served,
        refused,
        abandoned,
        cut: requestsInFlight
      },
      tasks: {
        inFlightAtStart: this.#tasksAtStart,
        started: this.#tasksStarted,
        settled: this.#tasksAtStart + this.#tasksStarted - tasksPending,
        cut: tasksPending
      }
    }
  }
}
