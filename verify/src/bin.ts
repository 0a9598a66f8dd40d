#!/usr/bin/env node
// graceful-shutdown-check verify: starts a service, loads it, stops it as a platform does, and
// tells whether it drained without losing a request. The process is this file's: its signals,
// its output and its exit code; verify() only gathers the facts.
import { parseArguments, USAGE } from './arguments.js'
import { UsageError } from './errors.js'
import { progressLine } from './progress.js'
import { formatReport } from './report.js'
import { verify } from './run.js'
import { resolveSettings } from './settings.js'
import { judge } from './verdict.js'

const EXIT_PASS = 0
const EXIT_FAIL = 1
const EXIT_USAGE = 2
/** As for any program stopped by Ctrl+C: 128 + SIGINT. */
const EXIT_INTERRUPTED = 130

async function main (argv: string[]): Promise<number> {
  const [command, ...args] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n')
    return command === undefined ? EXIT_USAGE : EXIT_PASS
  }
  if (command !== 'verify') throw new UsageError(`unknown command ${JSON.stringify(command)}: the only command is verify`)
  const parsed = parseArguments(args)
  if (parsed === undefined) {
    process.stdout.write(USAGE + '\n')
    return EXIT_PASS
  }
  const options = resolveSettings(parsed)

  // Ctrl+C (or a SIGTERM to verify itself) ends the run, and the service with it: it runs in a
  // process group (or a container) of its own, so the signal does not reach it from the terminal.
  const interrupted = new AbortController()
  const interrupt = (): void => interrupted.abort()
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt)
  const progress = process.stderr.isTTY ? progressLine(process.stderr) : undefined
  try {
    const run = await verify(options, { signal: interrupted.signal, ...progress === undefined ? {} : { onProgress: progress.update } })
    progress?.clear()
    const report = judge(options, run)
    process.stdout.write(parsed.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report))
    return report.pass ? EXIT_PASS : EXIT_FAIL
  } catch (err) {
    progress?.clear()
    if (!interrupted.signal.aborted) throw err
    return EXIT_INTERRUPTED
  } finally {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt)
  }
}

main(process.argv.slice(2)).then(code => {
  process.exitCode = code
}, (err: Error) => {
  const usage = err instanceof UsageError
  process.stderr.write(usage ? `${err.message}\nRun graceful-shutdown-check verify --help for the options.\n` : `${err.stack}\n`)
  process.exitCode = usage ? EXIT_USAGE : EXIT_FAIL
})
