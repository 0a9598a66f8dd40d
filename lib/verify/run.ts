import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { VerifyOptions } from './arguments.js'
import { ServiceProcess } from './child.js'
import { IdleSockets, type IdleSocketCounts } from './idle-sockets.js'
import { Load, type RequestCounts } from './load.js'
import { ReadinessPoller, StartError, waitUntilReady, type ReadinessChange, type Target } from './readiness.js'
import { judge, type Report } from './report.js'

export type Phase = 'starting' | 'warm-up' | 'draining' | 'settling'

export interface Progress {
  phase: Phase
  elapsedMs: number
  sent: number
  ok: number
  inFlight: number
  lost: number
}

export interface RunOptions {
  /** Called a few times a second while the run lasts. */
  onProgress?: (progress: Progress) => void
}

/** The facts of one run, before they are judged. */
export interface Run {
  url: string
  pid: number | undefined
  /** Why the run stopped before the signal, if it did. */
  startFailure: string | undefined
  readinessMode: 'http' | 'tcp' | undefined
  exit: { code: number | null, signal: NodeJS.Signals | null, afterSignalMs: number | undefined } | undefined
  /** verify sent SIGKILL: the grace period passed. */
  killedAfterGracePeriod: boolean
  signalled: boolean
  requests: RequestCounts | undefined
  idleSockets: IdleSocketCounts | undefined
  readiness: ReadinessChange[]
  output: string[]
}

/** A port on 127.0.0.1 that nothing listens on right now (the kernel's pick). */
export async function freePort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/**
 * Starts the service, loads it, signals it after the warm-up and keeps the load going until it
 * exits, or until the grace period ends and it is killed as the platform would kill it.
 */
export async function verify (options: VerifyOptions, { onProgress }: RunOptions = {}): Promise<Report> {
  const port = options.url === undefined ? options.port ?? await freePort() : undefined
  const target: Target = options.url === undefined
    ? { host: '127.0.0.1', port: port! }
    : { host: options.url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(options.url.port || 80) }
  const url = options.url?.origin ?? `http://127.0.0.1:${port}`

  const service = new ServiceProcess(options.command, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env, ...(port === undefined ? {} : { PORT: String(port) }) }
  })
  // Interrupted (Ctrl+C): the service is in a process group of its own, so it is not signalled with us.
  const interrupted = (): void => {
    service.killGroup()
    process.exit(130)
  }
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted)

  const startedAt = performance.now()
  let phase: Phase = 'starting'
  let load: Load | undefined
  const progress = onProgress === undefined
    ? undefined
    : setInterval(() => onProgress({
      phase,
      elapsedMs: performance.now() - startedAt,
      sent: load?.counts.total ?? 0,
      ok: load?.counts.ok ?? 0,
      inFlight: load?.inFlight ?? 0,
      lost: load?.counts.lost ?? 0
    }), 250)

  const run: Run = {
    url,
    pid: service.pid,
    startFailure: undefined,
    readinessMode: undefined,
    exit: undefined,
    killedAfterGracePeriod: false,
    signalled: false,
    requests: undefined,
    idleSockets: undefined,
    readiness: [],
    output: []
  }

  try {
    try {
      run.readinessMode = await waitUntilReady(target, service, options)
    } catch (err) {
      if (!(err instanceof StartError)) throw err
      run.startFailure = err.message
      service.killGroup()
      await service.exited
      run.output = service.output
      return judge(options, run)
    }

    const idlePath = run.readinessMode === 'http' && options.readyPath !== false ? options.readyPath : '/'
    const idle = await IdleSockets.open(target, idlePath, options.idleSockets, () => service.alive())
    const poller = options.readyPath === false ? undefined : new ReadinessPoller(target, options.readyPath, options.readyInterval)
    phase = 'warm-up'
    load = new Load(target, options)

    // Unreferenced: a service that exits early ends the warm-up, and the timer must not keep verify waiting.
    await Promise.race([sleep(options.warmup, undefined, { ref: false }), service.exited])
    const signalAt = performance.now()
    if (service.exit === undefined) {
      phase = 'draining'
      load.markSignal()
      service.signal(options.signal)
      run.signalled = true
      const deadline = sleep(options.gracePeriod, 'deadline', { ref: false })
      if (await Promise.race([deadline, service.exited]) === 'deadline') {
        // What the platform does when the grace period ends.
        run.killedAfterGracePeriod = true
        service.killGroup()
      }
    }
    const exit = await service.exited
    if (!run.signalled) {
      const how = exit.signal === null ? `code ${exit.code}` : `killed by ${exit.signal}`
      run.startFailure = `the service exited during the warm-up, before the signal (${how})`
    }

    phase = 'settling'
    run.requests = await load.stop()
    await poller?.stop()
    run.readiness = poller?.changes(signalAt) ?? []
    run.idleSockets = idle.counts(signalAt)
    idle.close()
    run.exit = {
      code: exit.code,
      signal: exit.signal,
      afterSignalMs: run.signalled ? Math.round(exit.at - signalAt) : undefined
    }
    run.output = service.output
    return judge(options, run)
  } finally {
    if (progress !== undefined) clearInterval(progress)
    process.off('SIGINT', interrupted).off('SIGTERM', interrupted)
    // Whatever the service left behind (a grandchild holding the port) goes with it, as with a container.
    service.killGroup()
  }
}
