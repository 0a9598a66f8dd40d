import { performance } from 'node:perf_hooks'

export interface RequestInfo {
  method: string
  url: string
  id: string
}

export interface PendingWork {
  kind: 'request' | 'task'
  method?: string
  url?: string
  id?: string
  ageMs: number
}

/**
 * Knows what is in flight: requests between their start and the close of their response,
 * and background work passed to track(). The drain waits on it; it knows nothing of Fastify.
 *
 * Requests are kept in a Map keyed by the response, not in a counter, so that ending the same
 * request twice (or one that never began) cannot push the count out of true.
 */
export class InFlightTracker<Key extends object = object> {
  readonly #requests = new Map<Key, RequestInfo & { startedAt: number }>()
  readonly #tasks = new Map<Promise<unknown>, number>()
  #idleWaiters: Array<() => void> = []
  readonly #onTaskRejected: (error: unknown) => void

  constructor (onTaskRejected: (error: unknown) => void = () => {}) {
    this.#onTaskRejected = onTaskRejected
  }

  get activeRequests (): number {
    return this.#requests.size
  }

  get pendingTasks (): number {
    return this.#tasks.size
  }

  get idle (): boolean {
    return this.#requests.size === 0 && this.#tasks.size === 0
  }

  begin (key: Key, info: RequestInfo): void {
    this.#requests.set(key, { ...info, startedAt: performance.now() })
  }

  end (key: Key): void {
    if (this.#requests.delete(key)) this.#wakeIfIdle()
  }

  /** Holds the drain open until the promise settles; returns the promise as given. */
  track<T> (work: Promise<T>): Promise<T> {
    this.#tasks.set(work, performance.now())
    const settle = (): void => {
      this.#tasks.delete(work)
      this.#wakeIfIdle()
    }
    work.then(settle, (error: unknown) => {
      this.#onTaskRejected(error)
      settle()
    })
    return work
  }

  /** The keys of the requests in flight, in the order they began. */
  requestKeys (): IterableIterator<Key> {
    return this.#requests.keys()
  }

  /** Resolves as soon as nothing is in flight (at once if nothing is). */
  whenIdle (): Promise<void> {
    if (this.idle) return Promise.resolve()
    return new Promise(resolve => { this.#idleWaiters.push(resolve) })
  }

  /** What is still in flight, oldest first, for the log line of a drain that ran out of time. */
  pending (): PendingWork[] {
    const now = performance.now()
    const requests: PendingWork[] = [...this.#requests.values()].map(({ startedAt, ...info }) => ({
      kind: 'request', ...info, ageMs: Math.round(now - startedAt)
    }))
    const tasks: PendingWork[] = [...this.#tasks.values()].map(startedAt => ({
      kind: 'task', ageMs: Math.round(now - startedAt)
    }))
    return [...requests, ...tasks].sort((a, b) => b.ageMs - a.ageMs)
  }

  #wakeIfIdle (): void {
    if (!this.idle) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const wake of waiters) wake()
  }
}
