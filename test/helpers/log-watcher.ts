import { Writable } from 'node:stream'

interface Waiter<Line> {
  match (line: Line): boolean
  resolve (line: Line): void
  reject (err: Error): void
  what: string
}

/**
 * The lines a source logged, kept and awaitable. Whoever has the lines (a child's stdout, a pino
 * destination stream, a fake logger) adds them; `end` says no more will come and why.
 */
export class LogWatcher<Line> {
  readonly lines: Line[] = []
  readonly #waiting = new Set<Waiter<Line>>()
  #ended: ((what: string) => Error) | undefined

  add (line: Line): void {
    this.lines.push(line)
    for (const waiter of this.#waiting) {
      if (waiter.match(line)) { this.#waiting.delete(waiter); waiter.resolve(line) }
    }
  }

  /** Rejects what still waits, and every later wait for a line not seen, with `reason(what)`. */
  end (reason: (what: string) => Error): void {
    this.#ended = reason
    for (const waiter of this.#waiting) waiter.reject(reason(waiter.what))
    this.#waiting.clear()
  }

  /** Resolves with the first line (past or future) that matches. */
  waitFor (match: (line: Line) => boolean, what = 'a matching line'): Promise<Line> {
    const seen = this.lines.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    if (this.#ended !== undefined) return Promise.reject(this.#ended(what))
    return new Promise((resolve, reject) => { this.#waiting.add({ match, resolve, reject, what }) })
  }
}

/** A pino destination for an in-process app: every line it writes, parsed. */
export function capturedLogs (): { stream: Writable, lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)))
      done()
    }
  })
  return { stream, lines }
}
