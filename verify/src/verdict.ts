import { constants } from 'node:os'
import type { IdleSocketCounts } from './idle-sockets.js'
import type { RequestCounts } from './load.js'
import type { ReadinessChange } from './readiness.js'
import type { Run } from './run.js'
import type { VerifyOptions } from './settings.js'

export interface Report {
  pass: boolean
  /** Why it failed, one sentence each; empty when it passed. */
  failures: string[]
  /** What makes the run prove less than it should, without failing it. */
  warnings: string[]
  command: string[]
  dockerfile: string | undefined
  /** Set when the service ran as a container: the engine, the image built, how long the build took. */
  container: Run['container']
  url: string
  protocol: Run['protocol']
  pid: number | undefined
  route: string
  load: { rate: number, connections: number, warmupMs: number, timeoutMs: number }
  signal: { name: NodeJS.Signals, sent: boolean }
  exit: { code: number | null, signal: NodeJS.Signals | null, afterSignalMs: number | undefined } | undefined
  gracePeriod: { ms: number, source: string, exceeded: boolean }
  requests: RequestCounts | undefined
  idleSockets: IdleSocketCounts | undefined
  readiness: {
    path: string | false
    /** 'tcp': the path answered 404, 405 or 501 (or there is none), so a TCP connect told when the service was up. */
    mode: 'http' | 'tcp' | undefined
    /** Each change of answer, timed from the signal (ms). */
    changes: ReadinessChange[]
    /** When readiness first answered other than 2xx after the signal, or null if it never did. */
    notReadyAfterMs: number | null
  }
  /** The last lines the service wrote, when it failed (why, often) or ran as a container. */
  output: string[]
}

export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** A container's exit code of 128 + n is how the engine tells that signal n ended PID 1. */
function signalInCode (code: number | null): string {
  const name = code !== null && code > 128 ? Object.entries(constants.signals).find(([, number]) => number === code - 128)?.[0] : undefined
  return name === undefined ? '' : ` (128 + ${name}: the signal ended it)`
}

/** The verdict: a pass needs no request lost, exit code 0, and an exit within the grace period. */
export function judge (options: VerifyOptions, run: Run): Report {
  const failures: string[] = []
  const warnings: string[] = []
  const { requests, exit, idleSockets } = run
  const signal = options.signal
  const spec = options.service
  // The engine's stop takes whole seconds.
  const gracePeriodMs = spec.kind === 'container' ? Math.ceil(options.gracePeriod / 1000) * 1000 : options.gracePeriod

  if (run.startFailure !== undefined) failures.push(run.startFailure)
  if (requests !== undefined && requests.lost > 0) {
    failures.push(`${plural(requests.lost, 'request')} lost: ${requests.reset} cut after being sent, ${requests.timeout} timed out`)
  }
  if (run.killedAfterGracePeriod) {
    failures.push(`still running ${gracePeriodMs} ms after ${signal} (the grace period): SIGKILL sent, as the platform would`)
  } else if (exit !== undefined && run.signalled) {
    if (exit.signal !== null) {
      failures.push(`killed by ${exit.signal}` + (exit.signal === signal ? `: it has no ${signal} handler, so what was in flight was cut` : ''))
    } else if (exit.code !== 0) {
      failures.push(`exited with code ${exit.code}${signalInCode(exit.code)}`)
    }
  }

  const readyChanges = run.readiness
  const notReady = readyChanges.find(change => change.atMs >= 0 && !/^2\d\d$/.test(change.answer))
  if (requests !== undefined && run.signalled) {
    if (requests.inFlightAtSignal === 0) {
      warnings.push('no request was in flight at the signal, so the run proves little: raise --rate or load a slower route')
    }
    if (requests.ok === 0) warnings.push('no request was answered 2xx: check --route, --body and --header')
    if (run.readinessMode === 'http' && notReady === undefined) {
      warnings.push(`${options.readyPath} never stopped answering 2xx before the exit: a load balancer kept routing to it to the end`)
    }
  }
  if (idleSockets !== undefined && idleSockets.openAtExit > 0 && run.signalled) {
    warnings.push(`${plural(idleSockets.openAtExit, 'idle keep-alive socket')} still open when the process died: ` +
      'a proxy that reused one at that moment got a reset')
  }
  if (spec.kind === 'process' && spec.dockerfile?.shellForm) {
    warnings.push('the Dockerfile\'s command is in shell form, run here as /bin/sh -c: in a container /bin/sh is PID 1, ' +
      'and whether the signal reaches the service depends on the shell; prefer the exec form CMD ["node", "..."]')
  }
  if (gracePeriodMs !== options.gracePeriod) {
    warnings.push(`the engine's stop takes whole seconds: the grace period was ${gracePeriodMs / 1000} s, not ${options.gracePeriod} ms`)
  }

  const pass = failures.length === 0
  return {
    pass,
    failures,
    warnings,
    command: spec.command,
    dockerfile: spec.kind === 'container' ? spec.dockerfile : spec.dockerfile?.path,
    container: run.container,
    url: run.url,
    protocol: run.protocol,
    pid: run.pid,
    route: `${options.method} ${options.path}`,
    load: { rate: options.rate, connections: options.connections, warmupMs: options.warmup, timeoutMs: options.timeout },
    signal: { name: signal, sent: run.signalled },
    exit,
    gracePeriod: { ms: gracePeriodMs, source: options.gracePeriodSource, exceeded: run.killedAfterGracePeriod },
    requests,
    idleSockets,
    readiness: {
      path: options.readyPath,
      mode: run.readinessMode,
      changes: readyChanges,
      notReadyAfterMs: notReady?.atMs ?? null
    },
    output: pass && run.container === undefined ? [] : run.output
  }
}
