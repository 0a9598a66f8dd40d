import type { FastifyBaseLogger } from 'fastify'

const LEVELS = { fatal: 60, error: 50, warn: 40 } as const

/** An error as pino's serializer writes it; JSON.stringify would write {}. */
function serialize (value: unknown): unknown {
  if (!(value instanceof Error)) return value
  const { name, message, stack } = value
  const { code } = value as NodeJS.ErrnoException
  return code === undefined ? { type: name, message, stack } : { type: name, message, stack, code }
}

/**
 * The plugin's logger: the app's, or, when the app has none (Fastify's default `logger: false`),
 * one that still writes warnings and errors to stderr as JSON lines: an exit 1 must say why.
 */
export function pluginLogger (appLog: FastifyBaseLogger): FastifyBaseLogger {
  const bindings = { plugin: 'fastify-graceful-termination' }
  // Fastify's stand-in for "no logger" has no level; a logger set to 'silent' was chosen so.
  if (appLog.level !== undefined) return appLog.child(bindings)

  const noop = (): void => {}
  const write = (level: keyof typeof LEVELS) => (fieldsOrMessage: unknown, message?: string): void => {
    const fields = typeof fieldsOrMessage === 'object' && fieldsOrMessage !== null ? fieldsOrMessage : {}
    const msg = typeof fieldsOrMessage === 'string' ? fieldsOrMessage : message
    const line: Record<string, unknown> = { level: LEVELS[level], time: Date.now(), pid: process.pid, ...bindings }
    for (const [key, value] of Object.entries(fields)) line[key] = serialize(value)
    line.msg = msg
    process.stderr.write(`${JSON.stringify(line)}\n`)
  }
  const stderrLog = {
    level: 'warn',
    fatal: write('fatal'),
    error: write('error'),
    warn: write('warn'),
    info: noop,
    debug: noop,
    trace: noop,
    silent: noop,
    child: () => stderrLog
  }
  return stderrLog as unknown as FastifyBaseLogger
}

/** A stream that calls back once what was written to it before has been handed on. */
export interface OutputStream {
  write (chunk: string, encoding: BufferEncoding, callback: (err?: Error | null) => void): unknown
}

/**
 * Resolves true once everything written so far to stdout and stderr has left the process (a
 * zero-length write calls back after every write before it), false if that takes over maxMs.
 * process.exit() drops writes still pending, and PM2 in cluster mode turns every write to stdout and
 * stderr into an asynchronous write to its log file (PM2 issue #4075): an exit would lose the last
 * lines, those that say why. (pino's own destinations flush themselves at exit.)
 */
export async function flushOutput (maxMs: number, streams: OutputStream[] = [process.stdout, process.stderr]): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  // The encoding is given so that a write wrapped as (string, encoding, callback), as PM2 wraps
  // it, receives the callback where it expects one.
  const flushed = Promise.all(streams.map(stream => new Promise(resolve => { stream.write('', 'utf8', resolve) })))
  const outcome = await Promise.race([
    flushed.then(() => true),
    new Promise<false>(resolve => { timer = setTimeout(resolve, maxMs, false) })
  ])
  clearTimeout(timer)
  return outcome
}
