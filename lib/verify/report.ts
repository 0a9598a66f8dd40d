import type { VerifyOptions } from './arguments.js'
import type { IdleSocketCounts } from './idle-sockets.js'
import type { RequestCounts } from './load.js'
import type { ReadinessChange } from './readiness.js'
import type { Run } from './run.js'

export interface Report {
  pass: boolean
  /** Why it failed, one sentence each; empty when it passed. */
  failures: string[]
  /** What makes the run prove less than it should, without failing it. */
  warnings: string[]
  command: string[]
  dockerfile: string | undefined
  url: string
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
  /** The last lines the service wrote, when it failed: why, often. */
  output: string[]
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** An argument as a POSIX shell would need it written, so the command line shown can be pasted. */
const quote = (arg: string): string => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`

/** The verdict: a pass needs no request lost, exit code 0, and an exit within the grace period. */
export function judge (options: VerifyOptions, run: Run): Report {
  const failures: string[] = []
  const warnings: string[] = []
  const { requests, exit, idleSockets } = run
  const signal = options.signal

  if (run.startFailure !== undefined) failures.push(run.startFailure)
  if (requests !== undefined && requests.lost > 0) {
    failures.push(`${plural(requests.lost, 'request')} lost: ${requests.reset} cut after being sent, ${requests.timeout} timed out`)
  }
  if (run.killedAfterGracePeriod) {
    failures.push(`still running ${options.gracePeriod} ms after ${signal} (the grace period): SIGKILL sent, as the platform would`)
  } else if (exit !== undefined && run.signalled) {
    if (exit.signal !== null) {
      failures.push(`killed by ${exit.signal}` + (exit.signal === signal ? `: it has no ${signal} handler, so what was in flight was cut` : ''))
    } else if (exit.code !== 0) {
      failures.push(`exited with code ${exit.code}`)
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
  if (options.dockerfile?.shellForm) {
    warnings.push('the Dockerfile\'s command is in shell form, run here as /bin/sh -c: in a container /bin/sh is PID 1, ' +
      'and whether the signal reaches the service depends on the shell; prefer the exec form CMD ["node", "..."]')
  }

  const pass = failures.length === 0
  return {
    pass,
    failures,
    warnings,
    command: options.command,
    dockerfile: options.dockerfile?.path,
    url: run.url,
    pid: run.pid,
    route: `${options.method} ${options.path}`,
    load: { rate: options.rate, connections: options.connections, warmupMs: options.warmup, timeoutMs: options.timeout },
    signal: { name: signal, sent: run.signalled },
    exit,
    gracePeriod: { ms: options.gracePeriod, source: options.gracePeriodSource, exceeded: run.killedAfterGracePeriod },
    requests,
    idleSockets,
    readiness: {
      path: options.readyPath,
      mode: run.readinessMode,
      changes: readyChanges,
      notReadyAfterMs: notReady?.atMs ?? null
    },
    output: pass ? [] : run.output
  }
}

const signed = (ms: number): string => ms < 0 ? `${ms} ms` : `+${ms} ms`

/** Rows of two columns, the second right-aligned. */
function table (title: string, rows: Array<[string, number | string]>): string[] {
  const width = Math.max(title.length, ...rows.map(([label]) => label.length)) + 2
  const numbers = Math.max(5, ...rows.map(([, value]) => String(value).length))
  return [
    `  ${title.padEnd(width)}${'count'.padStart(numbers)}`,
    ...rows.map(([label, value]) => `  ${label.padEnd(width)}${String(value).padStart(numbers)}`)
  ]
}

/** The report as a person reads it. */
export function formatReport (report: Report): string {
  const lines: string[] = [`fastify-graceful-termination verify: ${report.pass ? 'PASS' : 'FAIL'}`, '']
  const { requests, exit, idleSockets, readiness } = report
  const signal = report.signal.name

  lines.push(`  service      ${report.command.map(quote).join(' ')}${report.dockerfile === undefined ? '' : ` (CMD of ${report.dockerfile})`}`)
  lines.push(`               pid ${report.pid ?? '-'}, ${report.url}`)
  lines.push(`  load         ${report.route}, ${report.load.rate} requests/s open-loop, at most ${plural(report.load.connections, 'keep-alive connection')}`)
  if (report.signal.sent && requests !== undefined) {
    lines.push(`  signal       ${signal} after ${report.load.warmupMs} ms of load, ${plural(requests.inFlightAtSignal, 'request')} in flight` +
      (requests.waitingAtSignal > 0 ? ` (${requests.waitingAtSignal} more waiting for a connection)` : ''))
  }
  if (exit !== undefined && report.signal.sent) {
    const how = exit.signal === null ? `exit code ${exit.code}` : `killed by ${exit.signal}`
    lines.push(`  exit         ${how}, ${exit.afterSignalMs} ms after ${signal}`)
  }
  lines.push(`  grace period ${report.gracePeriod.ms} ms (${report.gracePeriod.source})${report.gracePeriod.exceeded ? ': EXCEEDED, SIGKILL sent' : ''}`)
  if (readiness.path !== false) {
    const answers = readiness.changes.map(change => `${change.answer} from ${signed(change.atMs)}`).join(', ')
    const mode = readiness.mode === 'tcp' ? ' (no readiness route: started once it accepted a connection)' : ''
    lines.push(`  readiness    ${readiness.path}${mode}${answers === '' ? '' : `: ${answers}`}`)
  }

  if (requests !== undefined) {
    lines.push('', ...table('requests', [
      ['answered 2xx', requests.ok],
      ...Object.entries(requests.status).map(([status, count]): [string, number] => [`answered ${status}`, count]),
      ['refused with 503 (retryable)', requests.refused503],
      ['connection refused (retryable)', requests.connectionRefused],
      ['reset or cut after being sent (LOST)', requests.reset],
      ['timed out (LOST)', requests.timeout],
      ['total', requests.total]
    ]))
    if (report.signal.sent) lines.push(`  sent after the signal: ${requests.sentAfterSignal}, of which ${requests.okAfterSignal} answered 2xx`)
    const errors = Object.entries(requests.errors).map(([code, count]) => `${code} × ${count}`).join(', ')
    if (errors !== '') lines.push(`  errors seen: ${errors}`)
  }
  if (idleSockets !== undefined && idleSockets.opened > 0) {
    lines.push('', ...table('idle keep-alive sockets', [
      ['closed by the service before it exited', idleSockets.closedByService],
      ['still open when the process died', idleSockets.openAtExit],
      ['closed before the signal', idleSockets.closedBeforeSignal]
    ]))
  }

  if (report.failures.length > 0 || report.warnings.length > 0) lines.push('')
  for (const failure of report.failures) lines.push(`  FAIL: ${failure}`)
  for (const warning of report.warnings) lines.push(`  warning: ${warning}`)
  if (report.failures.length > 0 && requests === undefined && report.output.length > 0) {
    lines.push('', '  last lines of the service\'s output:', ...report.output.map(line => `    ${line}`))
  }
  return lines.join('\n') + '\n'
}
