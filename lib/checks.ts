import { performance } from 'node:perf_hooks'

/** A user's check: resolves (anything but false) when healthy; throws, rejects or returns false when not. */
export type HealthCheck = (signal: AbortSignal) => unknown

export interface CheckResult {
  ok: boolean
  /** How long the check took, or how long it was given before it counted as failed. */
  ms: number
  /** Why it failed: its error's message, 'returned false', or 'timed out after N ms'. */
  error?: string
}

export interface CheckRunnerOptions {
  /** A check that has not settled by then counts as failed, and its signal is aborted. */
  timeout: number
  /** A result this fresh is reused: probes every 100 ms do not run the check every 100 ms. */
  interval: number
}

/**
 * One check, run at most once at a time and at most once per interval: every probe in between
 * gets the same result, and one that comes while it runs waits for that run (at most timeout).
 * A check that hangs past its timeout is failed and its signal aborted; it is not run again
 * until it has settled, so a wedged dependency never piles up checks.
 */
export class CheckRunner {
  readonly #check: HealthCheck
  readonly #options: CheckRunnerOptions
  #last: { result: CheckResult, at: number } | undefined = undefined
  /** The result of the run under way, settled at its timeout at the latest. */
  #running: Promise<CheckResult> | undefined = undefined
  /** The check itself, until it settles: past its timeout too. */
  #unsettled: Promise<unknown> | undefined = undefined

  constructor (check: HealthCheck, options: CheckRunnerOptions) {
    this.#check = check
    this.#options = options
  }

  /** The latest result, undefined until the first run settles. */
  get last (): CheckResult | undefined { return this.#last?.result }

  result (): Promise<CheckResult> {
    const last = this.#last
    if (last !== undefined && (this.#unsettled !== undefined || performance.now() - last.at < this.#options.interval)) {
      return Promise.resolve(last.result)
    }
    this.#running ??= this.#run().then(result => {
      this.#last = { result, at: performance.now() }
      this.#running = undefined
      return result
    })
    return this.#running
  }

  #run (): Promise<CheckResult> {
    const { timeout } = this.#options
    const startedAt = performance.now()
    const abort = new AbortController()
    const elapsed = (): number => Math.round(performance.now() - startedAt)
    const unsettled = (async () => await this.#check(abort.signal))()
    this.#unsettled = unsettled
    const forget = (): void => { if (this.#unsettled === unsettled) this.#unsettled = undefined }
    const settled = unsettled.then(
      (value): CheckResult => value === false ? { ok: false, ms: elapsed(), error: 'returned false' } : { ok: true, ms: elapsed() },
      (err: unknown): CheckResult => ({ ok: false, ms: elapsed(), error: err instanceof Error ? err.message : String(err) })
    ).finally(forget)
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<CheckResult>(resolve => {
      timer = setTimeout(() => {
        abort.abort(new Error(`timed out after ${timeout} ms`))
        resolve({ ok: false, ms: timeout, error: `timed out after ${timeout} ms` })
      }, timeout)
    })
    return Promise.race([settled, timedOut]).finally(() => clearTimeout(timer))
  }
}

/** A named set of checks, as a probe reports them. */
export class CheckSet {
  readonly #runners: Array<[string, CheckRunner]>

  constructor (checks: Record<string, HealthCheck>, options: CheckRunnerOptions) {
    this.#runners = Object.entries(checks).map(([name, check]) => [name, new CheckRunner(check, options)])
  }

  get empty (): boolean { return this.#runners.length === 0 }

  /** Whether every check passed when it last ran; true until one has failed. */
  get lastOk (): boolean { return this.#runners.every(([, runner]) => runner.last?.ok !== false) }

  /** Every check's result (run now if its last one is stale), by name, and whether all passed. */
  async results (): Promise<{ ok: boolean, checks: Record<string, CheckResult> }> {
    const results = await Promise.all(this.#runners.map(async ([name, runner]) => [name, await runner.result()] as const))
    return { ok: results.every(([, result]) => result.ok), checks: Object.fromEntries(results) }
  }
}
