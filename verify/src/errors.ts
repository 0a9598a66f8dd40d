/** A command line that cannot be run: the bin prints the message and exits 2, before starting anything. */
export class UsageError extends Error {
  readonly code: string = 'GSC_USAGE'

  constructor (problem: string) {
    super(`graceful-shutdown-check: ${problem}`)
    this.name = 'UsageError'
  }
}

/** A bad option value: names the option, what is allowed and what was given. */
export class InvalidOptionError extends UsageError {
  override readonly code = 'GSC_INVALID_OPTION'

  constructor (option: string, allowed: string, received: string) {
    super(`option ${option} must be ${allowed}, received ${received}`)
    this.name = 'InvalidOptionError'
  }
}

/** A value as it was given, quoted when it is a string: `"30s"`, not `30s`. */
export function formatValue (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}
