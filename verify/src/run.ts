import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildImage, ContainerService } from './container.js'
import { HostProcess } from './host-process.js'
import { IdleSockets, type IdleSocketCounts } from './idle-sockets.js'
import { Load, type RequestCounts } from './load.js'
import { ReadinessPoller, StartError, waitUntilReady, type ReadinessChange } from './readiness.js'
import type { Service } from './service.js'
import type { VerifyOptions } from './settings.js'
import { protocolName, targetFor, type Target } from './target.js'

export type Phase = 'building' | 'starting' | 'warm-up' | 'draining' | 'settling'

export interface Progress {
  phase: Phase
  elapsedMs: number
  sent: number
  ok: number
  inFlight: number
  lost: number
}

export interface RunOptions {
  /** Aborted, the run stops at once, takes the service with it, and rejects with the signal's reason. */
  signal?: AbortSignal
  /** Called a few times a second while the run lasts. */
  onProgress?: (progress: Progress) => void
  /** The environment the service (or the engine) is started with. Default: process.env. */
  env?: NodeJS.ProcessEnv
}

/** The facts of one run, before they are judged. */
export interface Run {
  url: string
  protocol: 'HTTP/1.1' | 'h2' | 'h2c'
  pid: number | undefined
  /** Set when the service ran as a container. */
  container: { engine: string, image: string, buildMs: number } | undefined
  /** Why the run stopped before the signal, if it did. */
  startFailure: string | undefined
  readinessMode: 'http' | 'tcp' | undefined
  exit: { code: number | null, signal: NodeJS.Signals | null, afterSignalMs: number | undefined } | undefined
  /** Still running when the grace period ended: SIGKILL was sent, as the platform sends it. */
  killedAfterGracePeriod: boolean
  signalled: boolean
  requests: RequestCounts | undefined
  idleSockets: IdleSocketCounts | undefined
  readiness: ReadinessChange[]
  /** The last lines the service (or its image's build) wrote. */
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

/** `promise`, unless `signal` aborts first: then its reason. */
function abortable<T> (promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  signal.throwIfAborted()
  return new Promise((resolve, reject) => {
    const aborted = (): void => reject(signal.reason)
    signal.addEventListener('abort', aborted, { once: true })
    promise.finally(() => signal.removeEventListener('abort', aborted)).then(resolve, reject)
  })
}

/**
 * Starts the service (or builds and runs its image), loads it, stops it after the warm-up as the
 * platform would, keeps the load going until it exits, and returns what happened, unjudged.
 * Whatever it started is gone when it returns or rejects.
 */
export async function verify (options: VerifyOptions, { signal, onProgress, env = process.env }: RunOptions = {}): Promise<Run> {
  const spec = options.service
  const port = spec.kind === 'process' && options.url !== undefined ? undefined : options.port ?? await freePort()
  const target: Target = targetFor(options.url ?? new URL(`http://127.0.0.1:${port}`), options)

  const startedAt = performance.now()
  let phase: Phase = spec.kind === 'container' ? 'building' : 'starting'
  let service: Service | undefined
  let load: Load | undefined
  let idle: IdleSockets | undefined
  let poller: ReadinessPoller | undefined
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
    url: target.origin,
    protocol: protocolName(target),
    pid: undefined,
    container: undefined,
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
      if (spec.kind === 'container') {
        const built = await buildImage(spec, { env, signal })
        run.container = { engine: built.engine, image: built.image, buildMs: built.buildMs }
        phase = 'starting'
        service = await ContainerService.start(spec, built, { hostPort: port!, env, signal })
      } else {
        service = new HostProcess(spec.command, { cwd: spec.cwd, env: { ...env, ...spec.env, ...(port === undefined ? {} : { PORT: String(port) }) } })
      }
      run.pid = service.pid
      run.readinessMode = await waitUntilReady(target, service, options, signal)
    } catch (err) {
      if (!(err instanceof StartError)) throw err
      run.startFailure = err.message
      run.output = [...err.output, ...await service?.lastLines() ?? []]
      return run
    }

    const started = service
    const idlePath = run.readinessMode === 'http' && options.readyPath !== false ? options.readyPath : '/'
    idle = await IdleSockets.open(target, idlePath, options.idleSockets, () => started.alive())
    poller = options.readyPath === false ? undefined : new ReadinessPoller(target, options.readyPath, options.readyInterval)
    phase = 'warm-up'
    load = new Load(target, options)

    // Unreferenced: a service that exits early ends the warm-up, and the timer must not keep verify waiting.
    await abortable(Promise.race([sleep(options.warmup, undefined, { ref: false }), service.exited]), signal)
    const signalAt = performance.now()
    if (service.exit === undefined) {
      phase = 'draining'
      load.markSignal()
      run.signalled = true
      run.killedAfterGracePeriod = (await abortable(service.stop(options.signal, options.gracePeriod), signal)).killed
    }
    const exit = await abortable(service.exited, signal)
    if (!run.signalled) {
      const how = exit.signal === null ? `code ${exit.code}` : `killed by ${exit.signal}`
      run.startFailure = `the service exited during the warm-up, before the signal (${how})`
    }

    phase = 'settling'
    run.requests = await abortable(load.stop(), signal)
    await poller?.stop()
    run.readiness = poller?.changes(signalAt) ?? []
    run.idleSockets = idle.counts(signalAt)
    run.exit = {
      code: exit.code,
      signal: exit.signal,
      afterSignalMs: run.signalled ? Math.round(exit.at - signalAt) : undefined
    }
    run.output = await service.lastLines()
    return run
  } finally {
    if (progress !== undefined) clearInterval(progress)
    load?.destroy()
    idle?.close()
    await poller?.stop()
    // Whatever the service left behind (a grandchild holding the port) goes with it, as with a container.
    await service?.destroy()
  }
}
