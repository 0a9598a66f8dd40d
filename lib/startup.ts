/** Work that must settle before the replica can serve: a promise, or a function given the drain's signal. */
export type StartupWork<T> = Promise<T> | ((signal: AbortSignal) => Promise<T>)

export interface StartupGateOptions {
  /** Aborted when the shutdown starts: a load that listens to it stops. */
  signal: AbortSignal
  /** Called once the last piece of work has settled and none failed. */
  onOpen (): void
  /** Called once, with the first piece of work that rejected while the app was still starting. */
  onFailure (err: unknown): void
  /** A rejection after the shutdown started: the load was stopped, nothing failed. */
  onAbandoned (err: unknown): void
}

/**
 * What must settle before the app is ready (loading a model, warming a cache, connecting to a
 * database). While any of it is pending the app is starting: alive, not ready, and refusing other
 * work. With none it is open from the start, as if there were no gate.
 */
export class StartupGate {
  readonly #options: StartupGateOptions
  #pending = 0
  #failed = false
  /** onOpen() was called: it is called once, however often the gate empties before listen(). */
  #announced = false

  constructor (options: StartupGateOptions) {
    this.#options = options
  }

  /** True while work is pending, or after some of it failed: the app cannot serve. */
  get starting (): boolean { return this.#pending > 0 || this.#failed }

  /** True once work handed to the gate has all settled; also true at once when none was. */
  get opened (): boolean { return !this.starting }

  /** Holds the gate until the work settles; returns it as given (called with the signal if a function). */
  add<T> (work: StartupWork<T>): Promise<T> {
    const promise = typeof work === 'function' ? work(this.#options.signal) : work
    this.#pending++
    promise.then(() => this.#settle(), (err: unknown) => this.#fail(err))
    return promise
  }

  #settle (): void {
    this.#pending--
    if (this.starting || this.#announced || this.#options.signal.aborted) return
    this.#announced = true
    this.#options.onOpen()
  }

  #fail (err: unknown): void {
    this.#pending--
    if (this.#options.signal.aborted) return this.#options.onAbandoned(err)
    if (this.#failed) return
    this.#failed = true
    this.#options.onFailure(err)
  }
}
