import { Semaphore } from 'async-mutex'

export interface LimitOptions {
  /** Requests that may hold a slot (run) at once. */
  maxConcurrency: number
  /** Requests that may wait for a slot. */
  maxQueue: number
  /** How long (ms) a request may wait for a slot; 0 for no limit. */
  queueTimeout: number
}

/** How a queued request's wait ends: it got a slot, or it waited queueTimeout in vain. */
export type Turn = 'run' | 'timed-out'

/** A request the limit let in: holding a slot, or waiting in the queue for one. */
export interface Place {
  /** True while the request waits for a slot. */
  readonly waiting: boolean
  /** Gives back the slot, or the place in the queue; only the first call does anything. */
  leave (): void
}

/** One request in the limit. A class, so that `waiting` lives on the prototype and costs nothing per request. */
class Entry implements Place {
  state: 'running' | 'waiting' | 'left'
  timer: NodeJS.Timeout | undefined = undefined
  readonly onTurn: (turn: Turn) => void
  readonly #leave: (entry: Entry) => void

  constructor (state: Entry['state'], onTurn: (turn: Turn) => void, leave: (entry: Entry) => void) {
    this.state = state
    this.onTurn = onTurn
    this.#leave = leave
  }

  get waiting (): boolean { return this.state === 'waiting' }

  leave (): void { this.#leave(this) }
}

/**
 * At most maxConcurrency requests hold a slot; up to maxQueue more wait for one, in arrival order.
 * It knows nothing of HTTP: the caller enters when a request arrives and leaves when its
 * response is over, whatever happened to it.
 *
 * The slots are a plain count (one thread, no lock needed). Waiting is what the Semaphore is
 * for: it holds the line. Its value stays 0, so every request that queues waits in it; a freed
 * slot is released into it, and async-mutex hands it to the oldest waiter. A Semaphore of
 * maxConcurrency holding the count instead would cost O(free slots) on every release
 * (async-mutex 0.5 walks its value there: about 20 µs per request at 10000), where this is O(1).
 */
export class ConcurrencyLimit {
  readonly #maxConcurrency: number
  readonly #maxQueue: number
  readonly #queueTimeout: number
  readonly #line = new Semaphore(0)
  #running = 0
  #queued = 0
  /** Entries that left the queue while async-mutex still holds their place in the line. */
  #abandoned = 0
  readonly #leaveEntry = (entry: Entry): void => this.#leave(entry)

  constructor ({ maxConcurrency, maxQueue, queueTimeout }: LimitOptions) {
    this.#maxConcurrency = maxConcurrency
    this.#maxQueue = maxQueue
    this.#queueTimeout = queueTimeout
  }

  /** Slots held: requests running, and slots on their way to a queued request. */
  get running (): number { return this.#running }

  /** Requests waiting for a slot. */
  get queued (): number { return this.#queued }

  /**
   * Lets a request in: with a slot free it holds one at once (`waiting` is false); else it
   * queues if `mayQueue` and the queue has room, and `onTurn` is called once when its wait ends,
   * never after leave(). Returns undefined when it may not wait: refused.
   */
  enter (onTurn: (turn: Turn) => void, mayQueue = true): Place | undefined {
    const running = this.#running < this.#maxConcurrency
    if (!running && (!mayQueue || this.#queued >= this.#maxQueue)) return undefined

    const entry = new Entry(running ? 'running' : 'waiting', onTurn, this.#leaveEntry)
    if (running) {
      this.#running++
      return entry
    }
    this.#queued++
    if (this.#queueTimeout > 0) {
      entry.timer = setTimeout(() => this.#timeOut(entry), this.#queueTimeout)
    }
    this.#lineUp(entry)
    return entry
  }

  #lineUp (entry: Entry): void {
    this.#line.acquire().then(() => {
      // #freeSlot() released a slot into the line and it fell to this entry; #running counts it.
      if (entry.state === 'left') {
        this.#abandoned--
        this.#freeSlot()
      } else {
        this.#start(entry)
      }
    }, () => {
      // The line was cancelled (#abandon): entries still waiting line up again, in the order they
      // had, and take a slot freed meanwhile first.
      if (entry.state === 'left') {
        this.#abandoned--
      } else if (this.#running < this.#maxConcurrency) {
        this.#running++
        this.#start(entry)
      } else {
        this.#lineUp(entry)
      }
    })
  }

  #start (entry: Entry): void {
    this.#stopWaiting(entry)
    entry.state = 'running'
    entry.onTurn('run')
  }

  /** A slot given back goes to the oldest entry in the line; with none, it is free. */
  #freeSlot (): void {
    // Nobody in the line (waiting, or left and not yet passed over): the slot is simply free,
    // with no call into async-mutex, which is the path of every request that never queued.
    if (this.#queued + this.#abandoned === 0) {
      this.#running--
      return
    }
    this.#line.release()
    if (this.#line.isLocked()) return
    // No entry took it: take it back out of the line, so the line's value stays 0.
    this.#line.setValue(0)
    this.#running--
  }

  #leave (entry: Entry): void {
    if (entry.state === 'running') {
      entry.state = 'left'
      this.#freeSlot()
    } else if (entry.state === 'waiting') {
      this.#abandon(entry)
    }
  }

  /** Runs only while the entry waits: #stopWaiting() clears the timer. */
  #timeOut (entry: Entry): void {
    this.#abandon(entry)
    entry.onTurn('timed-out')
  }

  /**
   * async-mutex cannot take one waiter out of its line: an entry that leaves keeps its place
   * there, and passes the slot on when its turn comes. So that places of clients long gone do not
   * pile up while no slot frees, once they outnumber the queue bound the whole line is cancelled
   * and the entries still waiting line up again: it never holds more than 2 * maxQueue + 1.
   */
  #abandon (entry: Entry): void {
    this.#stopWaiting(entry)
    entry.state = 'left'
    this.#abandoned++
    if (this.#abandoned > this.#maxQueue) this.#line.cancel()
  }

  #stopWaiting (entry: Entry): void {
    this.#queued--
    clearTimeout(entry.timer)
  }
}
