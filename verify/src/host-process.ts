import { spawn, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { LastLines, processRuns, type Service, type ServiceExit } from './service.js'

/**
 * The service run on this machine, in a process group of its own: the signal goes to the process
 * itself, as a platform sends it to a container's PID 1, while a SIGKILL takes the whole group,
 * as the platform's takes the whole container.
 */
export class HostProcess implements Service {
  readonly exited: Promise<ServiceExit>
  readonly #child: ChildProcess
  readonly #output = new LastLines()
  #exit: ServiceExit | undefined

  constructor (command: string[], { cwd, env }: { cwd: string, env: NodeJS.ProcessEnv }) {
    this.#child = spawn(command[0]!, command.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    this.#output.read(this.#child.stdout!)
    this.#output.read(this.#child.stderr!)
    // 'exit', not 'close': a grandchild may hold the pipes open long after the process is gone.
    this.exited = new Promise(resolve => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal, at: performance.now() }
        // When a container's PID 1 exits, the kernel kills every process left in it: what the
        // service started (a shell's child, say) must not go on answering for it here either.
        this.#killGroup()
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

  get exit (): ServiceExit | undefined {
    return this.#exit
  }

  alive (): boolean {
    return this.#exit === undefined && this.#child.pid !== undefined && processRuns(this.#child.pid)
  }

  async stop (signal: NodeJS.Signals, gracePeriodMs: number): Promise<{ killed: boolean }> {
    if (this.#exit === undefined) this.#child.kill(signal)
    const deadline = new AbortController()
    const outcome = await Promise.race([sleep(gracePeriodMs, 'deadline', { signal: deadline.signal }).catch(() => 'exited'), this.exited])
    deadline.abort()
    // What the platform does when the grace period ends.
    if (outcome === 'deadline') this.#killGroup()
    await this.exited
    return { killed: outcome === 'deadline' }
  }

  async destroy (): Promise<void> {
    this.#killGroup()
    await this.exited
  }

  async lastLines (): Promise<string[]> {
    return this.#output.lines
  }

  /** SIGKILL to every process of the group: what is left of it after the service is gone too. */
  #killGroup (): void {
    if (this.#child.pid === undefined) return
    try {
      process.kill(-this.#child.pid, 'SIGKILL')
    } catch {}
  }
}
