import { existsSync, readFileSync } from 'node:fs'

export interface ServiceExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** performance.now() when the exit was seen. */
  at: number
  /** Set when the command could not be started at all (ENOENT, EACCES). */
  error?: Error
}

/** The service under test, whether a process of this machine or a container. */
export interface Service {
  /** Resolves once the service has exited, however. */
  readonly exited: Promise<ServiceExit>
  /** The exit, once it has been seen. */
  readonly exit: ServiceExit | undefined
  /** The process's id on this machine, when there is one to tell. */
  readonly pid: number | undefined
  /** Whether it still runs, asked of the kernel when it can tell (see runningFromStat). */
  alive (): boolean
  /**
   * Stops it as a platform does: `signal`, then SIGKILL once `gracePeriodMs` has passed.
   * Resolves once it has exited; killed: the grace period ran out.
   */
  stop (signal: NodeJS.Signals, gracePeriodMs: number): Promise<{ killed: boolean }>
  /** Ends it at once, with whatever it started; resolves once it is gone. */
  destroy (): Promise<void>
  /** The last lines it wrote, stdout and stderr interleaved. */
  lastLines (): Promise<string[]>
}

/** How many lines of the service's output a report keeps. */
export const OUTPUT_LINES_KEPT = 30

/** Linux tells a process's state in /proc; elsewhere only the exit does. */
const HAS_PROC = existsSync('/proc/self/stat')
/** Linux's task flag for a process on its way out (include/linux/sched.h). */
const PF_EXITING = 0x4

/** Whether a /proc/<pid>/stat line describes a process that runs: neither a zombie nor exiting. */
export function runningFromStat (stat: string): boolean {
  // After the name in parentheses (which may hold any character): state, ppid, pgrp, session,
  // tty_nr, tpgid, flags, …
  const [state = '', , , , , , flags] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return !/^[ZX]/.test(state) && (Number(flags) & PF_EXITING) === 0
}

/**
 * Whether the process `pid` still runs, asked of the kernel: a socket closed as the process died
 * can be read before its exit is reported. A zombie has died, and so has a process flagged
 * PF_EXITING: the kernel sets it before it closes a dying process's sockets, while the state can
 * still read R (seen under load). Without /proc, or without the pid, it is taken to run.
 */
export function processRuns (pid: number | undefined): boolean {
  if (!HAS_PROC || pid === undefined) return true
  try {
    return runningFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  /* c8 ignore start: reaped between the exit check and the read, a window no test can hold open */
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
  /* c8 ignore stop */
}

/** Keeps the last `count` lines of what is written to it, a chunk at a time. */
export class LastLines {
  readonly #lines: string[] = []
  readonly #count: number

  constructor (count = OUTPUT_LINES_KEPT) {
    this.#count = count
  }

  /** Reads `stream` to its end (a chatty writer must never block on a full pipe), keeping its last lines. */
  read (stream: NodeJS.ReadableStream): void {
    let partial = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop()!
      this.#push(lines)
    })
    stream.once('end', () => { if (partial !== '') this.#push([partial]) })
  }

  #push (lines: string[]): void {
    this.#lines.push(...lines)
    this.#lines.splice(0, this.#lines.length - this.#count)
  }

  get lines (): string[] {
    return [...this.#lines]
  }
}
