#!/usr/bin/env node
// fastify-graceful-termination verify: starts a service, loads it, signals it, and tells whether
// it drained without losing a request.
import { InvalidCerebriumConfigError, InvalidOptionError, UsageError } from './errors.js'
import { parseArguments, USAGE } from './verify/arguments.js'
import { progressLine } from './verify/progress.js'
import { formatReport } from './verify/report.js'
import { verify } from './verify/run.js'

const EXIT_PASS = 0
const EXIT_FAIL = 1
const EXIT_USAGE = 2

async function main (argv: string[]): Promise<number> {
  const [command, ...args] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n')
    return command === undefined ? EXIT_USAGE : EXIT_PASS
  }
  if (command !== 'verify') {
    throw new UsageError(`unknown command ${JSON.stringify(command)}: the only command is verify`)
  }
  const options = parseArguments(args)
  if (options === undefined) {
    process.stdout.write(USAGE + '\n')
    return EXIT_PASS
  }

  const progress = process.stderr.isTTY ? progressLine(process.stderr) : undefined
  const report = await verify(options, progress === undefined ? {} : { onProgress: progress.update })
  progress?.clear()
  process.stdout.write(options.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report))
  return report.pass ? EXIT_PASS : EXIT_FAIL
}

main(process.argv.slice(2)).then(code => {
  process.exitCode = code
}, (err: Error) => {
  const usage = err instanceof InvalidOptionError || err instanceof UsageError || err instanceof InvalidCerebriumConfigError
  process.stderr.write(usage ? `${err.message}\nRun fastify-graceful-termination verify --help for the options.\n` : `${err.stack}\n`)
  process.exitCode = usage ? EXIT_USAGE : EXIT_FAIL
})
