import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

export interface ServiceExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** performance.now() when the exit was seen. */
  at: number
  /** Set when the command could not be started at all (ENOENT, EACCES). */
  error?: Error
}

const OUTPUT_LINES_KEPT = 30
/** Linux tells a process's state in /proc; elsewhere only the exit event does. */
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
 * The service under test, in a process group of its own: the signal goes to the process itself,
 * as a platform sends it to a container's PID 1, while a SIGKILL takes the whole group, as the
 * platform's takes the whole container.
 */
export class ServiceProcess {
  readonly exited: Promise<ServiceExit>
  readonly #child: ChildProcess
  readonly #output: string[] = []
  #exit: ServiceExit | undefined

  constructor (command: string[], { cwd, env }: { cwd: string, env: NodeJS.ProcessEnv }) {
    this.#child = spawn(command[0]!, command.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    // Read all the output, or a chatty service blocks on a full pipe; keep the end for the report.
    for (const stream of [this.#child.stdout!, this.#child.stderr!]) {
      let partial = ''
      stream.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n')
        partial = lines.pop()!
        this.#output.push(...lines)
        this.#output.splice(0, this.#output.length - OUTPUT_LINES_KEPT)
      })
    }
    // 'exit', not 'close': a grandchild may hold the pipes open long after the process is gone.
    this.exited = new Promise(resolve => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal, at: performance.now() }
        // When a container's PID 1 exits, the kernel kills every process left in it: what the
        // service started (a shell's child, say) must not go on answering for it here either.
        this.killGroup()
        resolve(this.#exit)
      })
      this.#child.once('error', error => {
        if (this.#child.pid === undefined) resolve(this.#exit = { code: null, signal: null, at: performance.now(), error })
      })
    })
  }

  get pid (): number | undefined {
    return this.#child.pid
  }

  /** The exit, once it has been seen. */
  get exit (): ServiceExit | undefined {
    return this.#exit
  }

  /** The last lines the service wrote, stdout and stderr interleaved. */
  get output (): string[] {
    return [...this.#output]
  }

  /**
   * Whether the process still runs, asked of the kernel when it can tell: a socket closed as the
   * process died can be read before its exit is reported here. A zombie has died, and so has a
   * process flagged PF_EXITING: the kernel sets it before it closes a dying process's sockets,
   * while the state can still read R (seen under load).
   */
  alive (): boolean {
    if (this.#exit !== undefined || this.#child.pid === undefined) return false
    if (!HAS_PROC) return true
    try {
      return runningFromStat(readFileSync(`/proc/${this.#child.pid}/stat`, 'utf8'))
    /* c8 ignore start: reaped between the exit check and the read, a window no test can hold open */
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ENOENT'
    }
    /* c8 ignore stop */
  }

  signal (signal: NodeJS.Signals): void {
    if (this.#exit === undefined) this.#child.kill(signal)
  }

  /** SIGKILL to every process of the group: what is left of it after the service is gone too. */
  killGroup (): void {
    if (this.#child.pid === undefined) return
    try {
      process.kill(-this.#child.pid, 'SIGKILL')
    } catch {}
  }
}
