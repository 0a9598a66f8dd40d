import { constants } from 'node:os'
import { join, relative } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { cerebriumOptions } from '../cerebrium.js'
import { InvalidOptionError, UsageError } from '../errors.js'
import { decimalInteger, formatValue, MAX_DURATION_MS } from '../options.js'
import { commandFromDockerfile } from './dockerfile.js'

export interface VerifyOptions {
  /** The service's command line: what follows `--`, or the Dockerfile's CMD. */
  command: string[]
  cwd: string
  /** Added to this process's environment (PORT, the Dockerfile's ENV). */
  env: Record<string, string>
  /** Set when the command came from a Dockerfile. */
  dockerfile: { path: string, shellForm: boolean } | undefined
  method: string
  path: string
  body: string | undefined
  headers: Record<string, string>
  rate: number
  connections: number
  warmup: number
  signal: NodeJS.Signals
  gracePeriod: number
  /** Where gracePeriod came from: '--grace-period', the toml's path, or 'default'. */
  gracePeriodSource: string
  timeout: number
  readyPath: string | false
  readyInterval: number
  startTimeout: number
  idleSockets: number
  /** The port verify sets in PORT; undefined with --url. */
  port: number | undefined
  /** Where the service answers: --url, or http://127.0.0.1:PORT once the port is picked. */
  url: URL | undefined
  json: boolean
}

export const USAGE = `Usage: fastify-graceful-termination verify [options] -- <command...>
       fastify-graceful-termination verify [options] --dockerfile Dockerfile

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
  --port N                 the PORT to give the service (default: a free port)
  --url URL                where the service listens, when it picks its own port (no PORT set)
  --dockerfile PATH        run the CMD of this Dockerfile's last stage, from its directory
  --json                   print the report as JSON
  -h, --help               print this help`

const OPTIONS = {
  route: { type: 'string', default: 'GET /' },
  body: { type: 'string' },
  header: { type: 'string', multiple: true, default: [] as string[] },
  rate: { type: 'string', default: '20' },
  connections: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2000' },
  signal: { type: 'string', default: 'SIGTERM' },
  'grace-period': { type: 'string' },
  timeout: { type: 'string' },
  'ready-path': { type: 'string', default: '/ready' },
  'ready-interval': { type: 'string', default: '100' },
  'start-timeout': { type: 'string', default: '30000' },
  'idle-sockets': { type: 'string', default: '3' },
  port: { type: 'string' },
  url: { type: 'string' },
  dockerfile: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} satisfies ParseArgsConfig['options']

/** A bad command-line value, worded like a bad plugin option. */
function invalid (name: string, allowed: string, value: unknown): never {
  throw new InvalidOptionError(`--${name}`, allowed, formatValue(value))
}

const integer = (name: string, raw: string, min: number, max: number): number =>
  decimalInteger(min, max)(raw, allowed => invalid(name, allowed, raw))

/** A duration in milliseconds, as everywhere in this package. */
const duration = (name: string, raw: string, min = 0): number => integer(name, raw, min, MAX_DURATION_MS)

/**
 * Reads `verify`'s arguments (those after the word verify). Every value is checked here, so a
 * mistake exits 2 before anything is started. Returns undefined for --help.
 */
export function parseArguments (args: string[], { cwd = process.cwd() } = {}): VerifyOptions | undefined {
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
  const commandLine = positionals.map(token => token.value)

  let command = commandLine
  let commandCwd = cwd
  let commandEnv: Record<string, string> = {}
  let dockerfile: VerifyOptions['dockerfile']
  if (values.dockerfile !== undefined) {
    if (commandLine.length > 0) throw new UsageError('give a command after -- or --dockerfile, not both')
    const fromDockerfile = commandFromDockerfile(values.dockerfile, { cwd })
    command = fromDockerfile.command
    commandCwd = fromDockerfile.cwd
    commandEnv = fromDockerfile.env
    dockerfile = { path: values.dockerfile, shellForm: fromDockerfile.shellForm }
  } else if (commandLine.length === 0) {
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

  if (constants.signals[values.signal as NodeJS.Signals] === undefined) {
    invalid('signal', 'a signal name such as "SIGTERM" or "SIGINT"', values.signal)
  }

  const { gracePeriod, source: gracePeriodSource } = values['grace-period'] === undefined
    ? defaultGracePeriod(cwd)
    : { gracePeriod: duration('grace-period', values['grace-period'], 1), source: '--grace-period' }

  const readyPath = values['ready-path']
  if (readyPath !== 'none' && !readyPath.startsWith('/')) invalid('ready-path', 'a path starting with "/" or none', readyPath)

  if (values.port !== undefined && values.url !== undefined) {
    throw new UsageError(`--port ${formatValue(values.port)} and --url ${formatValue(values.url)} exclude each other: ` +
      'with --url the service picks its own port')
  }
  const port = values.port === undefined ? undefined : integer('port', values.port, 1, 65_535)
  let url: URL | undefined
  if (values.url !== undefined) {
    try {
      url = new URL(values.url)
    } catch {}
    if (url?.protocol !== 'http:') invalid('url', 'an http:// URL such as "http://127.0.0.1:8000"', values.url)
  }

  return {
    command,
    cwd: commandCwd,
    env: commandEnv,
    dockerfile,
    method: route[1]!.toUpperCase(),
    path: route[2]!,
    body: values.body,
    headers,
    rate,
    connections: integer('connections', values.connections, 1, 10_000),
    warmup: duration('warmup', values.warmup),
    signal: values.signal as NodeJS.Signals,
    gracePeriod,
    gracePeriodSource,
    timeout: values.timeout === undefined ? gracePeriod : duration('timeout', values.timeout, 1),
    readyPath: readyPath === 'none' ? false : readyPath,
    readyInterval: duration('ready-interval', values['ready-interval'], 10),
    startTimeout: duration('start-timeout', values['start-timeout'], 1),
    idleSockets: integer('idle-sockets', values['idle-sockets'], 0, 1000),
    port,
    url,
    json: values.json
  }
}

/** response_grace_period from ./cerebrium.toml when it sets one (as the platform will), else 30 s. */
function defaultGracePeriod (cwd: string): { gracePeriod: number, source: string } {
  // The environment overrides are the app's, not the platform's: the platform reads only the toml.
  const settings = cerebriumOptions({ file: join(cwd, 'cerebrium.toml'), env: {} })
  const fromToml = settings.options.gracePeriod
  return fromToml === undefined ? { gracePeriod: 30_000, source: 'default' } : { gracePeriod: fromToml, source: relative(cwd, settings.file) }
}
