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
  /** For a request that waits: `onTurn` is called once when its wait ends, never after leave(). */
  whenTurn (onTurn: (turn: Turn) => void): void
  /** Gives back the slot, or the place in the queue; only the first call does anything. */
  leave (): void
}

/** One request in the limit. A class, so that `waiting` lives on the prototype and costs nothing per request. */
class Entry implements Place {
  state: 'running' | 'waiting' | 'left'
  timer: NodeJS.Timeout | undefined = undefined
  onTurn: ((turn: Turn) => void) | undefined = undefined
  readonly #leave: (entry: Entry) => void

  constructor (state: Entry['state'], leave: (entry: Entry) => void) {
    this.state = state
    this.#leave = leave
  }

  get waiting (): boolean { return this.state === 'waiting' }

  whenTurn (onTurn: (turn: Turn) => void): void { this.onTurn = onTurn }

  leave (): void { this.#leave(this) }
}

/**
 * At most maxConcurrency requests hold a slot; up to maxQueue more wait for one, in arrival order.
 * The slots are a plain count, so a request that finds one free never touches async-mutex. Its
 * Semaphore, kept at 0, is only the queue: a freed slot is released into it and goes to the
 * oldest waiter. (A Semaphore of maxConcurrency would walk its free slots on every release.)
 */
export class ConcurrencyLimit {
  readonly #maxConcurrency: number
  readonly #maxQueue: number
  readonly #queueTimeout: number
  readonly #queue = new Semaphore(0)
  #running = 0
  #queued = 0
  /** Entries that left while the Semaphore still holds their place: it cannot remove one. */
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
   * queues if `mayQueue` and the queue has room, and is told through whenTurn() when its wait
   * ends: a request that finds a slot, nearly every one, needs no callback made for it. Returns
   * undefined when it may not wait: refused.
   */
  enter (mayQueue = true): Place | undefined {
    const running = this.#running < this.#maxConcurrency
    if (!running && (!mayQueue || this.#queued >= this.#maxQueue)) return undefined

    const entry = new Entry(running ? 'running' : 'waiting', this.#leaveEntry)
    if (running) {
      this.#running++
      return entry
    }
    this.#queued++
    if (this.#queueTimeout > 0) {
      entry.timer = setTimeout(() => this.#timeOut(entry), this.#queueTimeout)
    }
    this.#wait(entry)
    return entry
  }

  #wait (entry: Entry): void {
    this.#queue.acquire().then(() => {
      // A slot freed for this entry (#running still counts it); one that left passes it on.
      if (entry.state === 'left') {
        this.#abandoned--
        this.#freeSlot()
      } else {
        this.#start(entry)
      }
    }, () => {
      // The queue was cancelled (#abandon): those still waiting queue again, in the same order.
      if (entry.state === 'left') {
        this.#abandoned--
      } else if (this.#running < this.#maxConcurrency) {
        this.#running++
        this.#start(entry)
      } else {
        this.#wait(entry)
      }
    })
  }

  #start (entry: Entry): void {
    this.#stopWaiting(entry)
    entry.state = 'running'
    // The turn comes in a later tick than enter(), once whenTurn() has been called.
    entry.onTurn?.('run')
  }

  /** A slot given back goes to the oldest entry in the queue; with none, it is free. */
  #freeSlot (): void {
    if (this.#queued + this.#abandoned > 0) {
      this.#queue.release()
      if (this.#queue.isLocked()) return
      // Nobody took it: back to 0, so the next entry to queue waits.
      this.#queue.setValue(0)
    }
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
    entry.onTurn?.('timed-out')
  }

  /**
   * An entry that leaves keeps its place in the Semaphore and passes the slot on when its turn
   * comes. Once such places outnumber maxQueue, the queue is cancelled and rebuilt from those
   * still waiting, so clients long gone never pile up while no slot frees.
   */
  #abandon (entry: Entry): void {
    this.#stopWaiting(entry)
    entry.state = 'left'
    this.#abandoned++
    if (this.#abandoned > this.#maxQueue) this.#queue.cancel()
  }

  #stopWaiting (entry: Entry): void {
    this.#queued--
    clearTimeout(entry.timer)
  }
}
