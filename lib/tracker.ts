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

export interface TrackerOptions<Request> {
  /** What the log of a drain that ran out of time says of a request; only called then. */
  requestInfo (request: Request): RequestInfo
  onTaskRejected? (error: unknown): void
}

/** A request in flight, handed back by begin() and given to end(): a link of the tracker's list. */
export class InFlight<Request> {
  previous: InFlight<Request> | undefined = undefined
  next: InFlight<Request> | undefined = undefined
  ended = false
  constructor (readonly request: Request, readonly startedAt: number) {}
}

/**
 * What is in flight: requests from begin() to end(), and work passed to track(); the drain waits
 * on it. A linked list, not a counter, so a request ended twice counts once and what is still
 * pending can be listed at the deadline; not a Map, because hashing every request cost throughput.
 */
export class InFlightTracker<Request extends object = object> {
  #oldest: InFlight<Request> | undefined = undefined
  #newest: InFlight<Request> | undefined = undefined
  #activeRequests = 0
  readonly #tasks = new Map<Promise<unknown>, number>()
  #idleWaiters: Array<() => void> = []
  readonly #requestInfo: (request: Request) => RequestInfo
  readonly #onTaskRejected: (error: unknown) => void

  constructor ({ requestInfo, onTaskRejected = () => {} }: TrackerOptions<Request>) {
    this.#requestInfo = requestInfo
    this.#onTaskRejected = onTaskRejected
  }

  get activeRequests (): number {
    return this.#activeRequests
  }

  get pendingTasks (): number {
    return this.#tasks.size
  }

  get idle (): boolean {
    return this.#activeRequests === 0 && this.#tasks.size === 0
  }

  begin (request: Request): InFlight<Request> {
    const entry = new InFlight(request, performance.now())
    entry.previous = this.#newest
    if (this.#newest === undefined) this.#oldest = entry
    else this.#newest.next = entry
    this.#newest = entry
    this.#activeRequests++
    return entry
  }

  end (entry: InFlight<Request>): void {
    if (entry.ended) return
    entry.ended = true
    if (entry.previous === undefined) this.#oldest = entry.next
    else entry.previous.next = entry.next
    if (entry.next === undefined) this.#newest = entry.previous
    else entry.next.previous = entry.previous
    // The entry stays reachable from its response for a while: its links would keep every later
    // request alive with it, and once one is promoted the collector promotes the whole chain.
    entry.previous = entry.next = undefined
    this.#activeRequests--
    this.#wakeIfIdle()
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

  /** Resolves as soon as nothing is in flight (at once if nothing is). */
  whenIdle (): Promise<void> {
    if (this.idle) return Promise.resolve()
    return new Promise(resolve => { this.#idleWaiters.push(resolve) })
  }

  /** What is still in flight, oldest first, for the log line of a drain that ran out of time. */
  pending (): PendingWork[] {
    const now = performance.now()
    const requests: PendingWork[] = []
    for (let entry = this.#oldest; entry !== undefined; entry = entry.next) {
      requests.push({ kind: 'request', ...this.#requestInfo(entry.request), ageMs: Math.round(now - entry.startedAt) })
    }
    const tasks: PendingWork[] = [...this.#tasks.values()].map(startedAt => ({
      kind: 'task', ageMs: Math.round(now - startedAt)
    }))
    return [...requests, ...tasks].sort((a, b) => b.ageMs - a.ageMs)
  }

  #wakeIfIdle (): void {
    // Nothing in flight is common between requests; a waiter only once the drain started.
    if (this.#idleWaiters.length === 0 || !this.idle) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const wake of waiters) wake()
  }
}
