import { constants } from 'node:os'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { formatValue, InvalidOptionError, UsageError } from './errors.js'
import type { LoadOptions } from './load.js'

export type EngineName = 'docker' | 'podman'

/**
 * The command line, every value checked and nothing read yet: the files it names (the
 * Dockerfile, cerebrium.toml) are read by resolveSettings(), so parsing is pure.
 */
export interface VerifyArguments extends Omit<LoadOptions, 'timeout'> {
  /** What follows `--`: the service's command line, or with --engine the container's command. */
  command: string[]
  dockerfile: string | undefined
  /** Run the Dockerfile's image in this engine; 'auto': the first one on the PATH that answers. */
  engine: EngineName | 'auto' | undefined
  warmup: number
  /** undefined: SIGTERM, or with --engine the image's STOPSIGNAL, as the engine's stop sends it. */
  signal: NodeJS.Signals | undefined
  /** undefined: response_grace_period of ./cerebrium.toml, else 30000. */
  gracePeriod: number | undefined
  /** undefined: the grace period. */
  timeout: number | undefined
  readyPath: string | false
  readyInterval: number
  startTimeout: number
  idleSockets: number
  /** The PORT given to the service, or with --engine the port published on 127.0.0.1. */
  port: number | undefined
  /** Where the service answers when it picks its own port. */
  url: URL | undefined
  /** HTTP/2: over TLS as ALPN agrees it, over plain TCP with prior knowledge (h2c). */
  http2: boolean
  /** Accept any TLS certificate (a local service's self-signed one). */
  insecure: boolean
  json: boolean
}

export const USAGE = `Usage: graceful-shutdown-check verify [options] -- <command...>
       graceful-shutdown-check verify [options] --dockerfile Dockerfile
       graceful-shutdown-check verify [options] --dockerfile Dockerfile --engine docker|podman|auto [-- <command...>]

Starts the service, loads one route, sends it SIGTERM while requests are in flight, and accounts
for every request. Exits 0 when none was lost, the service exited 0 and within the grace period;
1 otherwise; 2 for bad usage.

Options:
  --route "METHOD /path"   the route to load (default "GET /")
  --body STRING            request body; sent as application/json when it parses as JSON
  --header "name: value"   a request header (repeatable)
  --rate N                 requests per second, sent on schedule whatever the answers (default 20)
  --connections N          keep-alive connections at most (default 10)
  --warmup MS              load before the signal (default 2000)
  --signal NAME            the signal to send (default SIGTERM)
  --grace-period MS        SIGKILL this long after the signal (default: response_grace_period
                           of ./cerebrium.toml, else 30000)
  --timeout MS             a request unanswered this long is lost (default: the grace period)
  --ready-path PATH|none   readiness route, polled throughout (default /ready); a 404, 405 or
                           501 there, or none, means a TCP connect tells when the service is up
  --ready-interval MS      readiness polling interval (default 100)
  --start-timeout MS       how long the service may take to be ready (default 30000)
  --idle-sockets N         idle keep-alive sockets held open through the shutdown (default 3)
  --port N                 the PORT to give the service (default: a free port); with --engine,
                           the port published on 127.0.0.1
  --url URL                where the service listens, when it picks its own port (no PORT set);
                           http:// or https://
  --http2                  speak HTTP/2: negotiated over https, prior knowledge (h2c) over http
  --insecure               accept the service's TLS certificate whatever signed it
  --dockerfile PATH        run the CMD of this Dockerfile's last stage, from its directory
  --engine NAME            docker, podman or auto (the first of them on the PATH that answers):
                           build the Dockerfile's image, run it, and stop it with the engine's
                           stop and the grace period; a command after -- replaces its CMD
  --json                   print the report as JSON
  -h, --help               print this help`

const OPTIONS = {
  route: { type: 'string', default: 'GET /' },
  body: { type: 'string' },
  header: { type: 'string', multiple: true, default: [] as string[] },
  rate: { type: 'string', default: '20' },
  connections: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2000' },
  signal: { type: 'string' },
  'grace-period': { type: 'string' },
  timeout: { type: 'string' },
  'ready-path': { type: 'string', default: '/ready' },
  'ready-interval': { type: 'string', default: '100' },
  'start-timeout': { type: 'string', default: '30000' },
  'idle-sockets': { type: 'string', default: '3' },
  port: { type: 'string' },
  url: { type: 'string' },
  http2: { type: 'boolean', default: false },
  insecure: { type: 'boolean', default: false },
  dockerfile: { type: 'string' },
  engine: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} satisfies ParseArgsConfig['options']

/** Node's longest timer: a longer delay fires at once, so a longer duration is an error. */
export const MAX_DURATION_MS = 2_147_483_647

const ENGINES = ['docker', 'podman', 'auto'] as const

/** A bad command-line value: the option, what it allows, and the value as it was typed. */
function invalid (name: string, allowed: string, value: unknown): never {
  throw new InvalidOptionError(`--${name}`, allowed, formatValue(value))
}

/** An integer written as plain decimal digits. */
function integer (name: string, raw: string, min: number, max: number): number {
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(value) || value < min || value > max) invalid(name, `an integer from ${min} to ${max}`, raw)
  return value
}

/** A duration in milliseconds. */
const duration = (name: string, raw: string, min = 0): number => integer(name, raw, min, MAX_DURATION_MS)

/**
 * Reads `verify`'s arguments (those after the word verify) and checks every value, so a mistake
 * exits 2 before anything is started. Reads no file. Returns undefined for --help.
 */
export function parseArguments (args: string[]): VerifyArguments | undefined {
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true, tokens: true })
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException
    // For an unknown option, parseArgs goes on to suggest `--` for a value starting with "-": not the problem here.
    throw new UsageError((code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? message.split('. ')[0]! : message).replace(/\n/g, ' '))
  }
  const { values, tokens } = parsed
  if (values.help) return undefined

  const terminator = tokens.find(token => token.kind === 'option-terminator')?.index ?? Infinity
  const positionals = tokens.filter(token => token.kind === 'positional')
  const stray = positionals.find(token => token.index < terminator)
  if (stray !== undefined) {
    throw new UsageError(`unexpected argument ${formatValue(stray.value)}: the service's command goes after --`)
  }
  const command = positionals.map(token => token.value)

  const engine = values.engine
  if (engine !== undefined && !(ENGINES as readonly string[]).includes(engine)) invalid('engine', 'docker, podman or auto', engine)
  if (engine !== undefined) {
    if (values.dockerfile === undefined) throw new UsageError(`--engine ${formatValue(engine)} builds the image from a Dockerfile: give --dockerfile too`)
    if (values.url !== undefined) throw new UsageError(`--engine ${formatValue(engine)} and --url exclude each other: the container's port is published on 127.0.0.1`)
    if (values.signal !== undefined) {
      throw new UsageError(`--engine ${formatValue(engine)} and --signal exclude each other: the engine's stop sends the image's STOPSIGNAL (SIGTERM unless the Dockerfile says otherwise)`)
    }
  } else if (values.dockerfile !== undefined && command.length > 0) {
    throw new UsageError('give a command after -- or --dockerfile, not both (with --engine, a command after -- replaces the CMD)')
  } else if (values.dockerfile === undefined && command.length === 0) {
    throw new UsageError('no command to run: give it after -- (e.g. -- node server.js), or use --dockerfile Dockerfile')
  }

  const route = /^([A-Za-z]+)\s+(\/\S*)$/.exec(values.route.trim())
  if (route === null) invalid('route', 'a method and a path, e.g. "POST /predict"', values.route)
  const headers: Record<string, string> = {}
  for (const header of values.header) {
    const match = /^([!#$%&'*+.^_`|~\w-]+):\s*(.*)$/.exec(header)
    if (match === null) invalid('header', 'a header as "name: value"', header)
    headers[match[1]!.toLowerCase()] = match[2]!
  }

  const rate = Number(values.rate)
  if (!/^\d+(\.\d+)?$/.test(values.rate) || rate <= 0 || rate > 10_000) {
    invalid('rate', 'a number of requests per second above 0 and at most 10000', values.rate)
  }

  if (values.signal !== undefined && constants.signals[values.signal as NodeJS.Signals] === undefined) {
    invalid('signal', 'a signal name such as "SIGTERM" or "SIGINT"', values.signal)
  }

  const readyPath = values['ready-path']
  if (readyPath !== 'none' && !readyPath.startsWith('/')) invalid('ready-path', 'a path starting with "/" or none', readyPath)

  if (values.port !== undefined && values.url !== undefined) {
    throw new UsageError(`--port ${formatValue(values.port)} and --url ${formatValue(values.url)} exclude each other: ` +
      'with --url the service picks its own port')
  }
  let url: URL | undefined
  if (values.url !== undefined) {
    try {
      url = new URL(values.url)
    } catch {}
    if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
      invalid('url', 'an http:// or https:// URL such as "http://127.0.0.1:8000"', values.url)
    }
  }
  if (values.insecure && url?.protocol !== 'https:') throw new UsageError('--insecure is for a service that speaks TLS: give its --url https://…')

  return {
    command,
    dockerfile: values.dockerfile,
    engine: engine as VerifyArguments['engine'],
    method: route[1]!.toUpperCase(),
    path: route[2]!,
    body: values.body,
    headers,
    rate,
    connections: integer('connections', values.connections, 1, 10_000),
    warmup: duration('warmup', values.warmup),
    signal: values.signal as NodeJS.Signals | undefined,
    gracePeriod: values['grace-period'] === undefined ? undefined : duration('grace-period', values['grace-period'], 1),
    timeout: values.timeout === undefined ? undefined : duration('timeout', values.timeout, 1),
    readyPath: readyPath === 'none' ? false : readyPath,
    readyInterval: duration('ready-interval', values['ready-interval'], 10),
    startTimeout: duration('start-timeout', values['start-timeout'], 1),
    idleSockets: integer('idle-sockets', values['idle-sockets'], 0, 1000),
    port: values.port === undefined ? undefined : integer('port', values.port, 1, 65_535),
    url,
    http2: values.http2,
    insecure: values.insecure,
    json: values.json
  }
}
