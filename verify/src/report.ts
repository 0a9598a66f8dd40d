import { plural, type Report } from './verdict.js'

/** An argument as a POSIX shell would need it written, so the command line shown can be pasted. */
const quote = (arg: string): string => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`

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
  const lines: string[] = [`graceful-shutdown-check verify: ${report.pass ? 'PASS' : 'FAIL'}`, '']
  const { requests, exit, idleSockets, readiness } = report
  const signal = report.signal.name

  const container = report.container
  if (container === undefined) {
    lines.push(`  service      ${report.command.map(quote).join(' ')}${report.dockerfile === undefined ? '' : ` (CMD of ${report.dockerfile})`}`)
  } else {
    lines.push(`  container    ${container.image}, built from ${report.dockerfile} by ${container.engine} in ${(container.buildMs / 1000).toFixed(1)} s`,
      `               running ${report.command.map(quote).join(' ')}`)
  }
  lines.push(`               pid ${report.pid ?? '-'}, ${report.url}${report.protocol === 'HTTP/1.1' ? '' : ` (${report.protocol})`}`)
  lines.push(`  load         ${report.route}, ${report.load.rate} requests/s open-loop, at most ${plural(report.load.connections, 'keep-alive connection')}`)
  if (report.signal.sent && requests !== undefined) {
    lines.push(`  signal       ${signal} after ${report.load.warmupMs} ms of load, ${plural(requests.inFlightAtSignal, 'request')} in flight` +
      (requests.waitingAtSignal > 0 ? ` (${requests.waitingAtSignal} more waiting for a connection)` : ''))
  }
  if (exit !== undefined && report.signal.sent) {
    const how = exit.signal === null ? `exit code ${exit.code}` : `killed by ${exit.signal}`
    const by = container === undefined ? '' : ` (${container.engine} stop)`
    lines.push(`  exit         ${how}, ${exit.afterSignalMs} ms after ${signal}${by}`)
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
      ...report.protocol === 'HTTP/1.1' ? [] : [['HTTP/2 stream refused (retryable)', requests.streamRefused] as [string, number]],
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
  if (report.output.length > 0) {
    lines.push('', `  last lines of the ${container === undefined ? 'service\'s output' : 'container\'s log'}:`, ...report.output.map(line => `    ${line}`))
  }
  return lines.join('\n') + '\n'
}
