import type { Progress } from './run.js'

/**
 * A status line rewritten in place on a terminal. Node's TTY stream already knows how to clear
 * and rewrite a line, which is all one line needs.
 */
export function progressLine (stream: NodeJS.WriteStream): { update (progress: Progress): void, clear (): void } {
  return {
    update ({ phase, elapsedMs, sent, ok, inFlight, lost }) {
      const line = `verify: ${(elapsedMs / 1000).toFixed(1)} s, ${phase}: ${sent} sent, ${ok} answered 2xx, ${inFlight} in flight, ${lost} lost`
      stream.cursorTo(0)
      stream.write(line.slice(0, Math.max(20, (stream.columns || 80) - 1)))
      stream.clearLine(1)
    },
    clear () {
      stream.cursorTo(0)
      stream.clearLine(0)
    }
  }
}
