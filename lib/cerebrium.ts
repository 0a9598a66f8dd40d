import { readFileSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { parse, TomlError } from 'smol-toml'
import { InvalidCerebriumConfigError, InvalidOptionError } from './errors.js'
import { decimalInteger, formatValue, integer, kSettingSources, MAX_DURATION_MS, routePath, type Check, type Fail, type GracefulTerminationOptions, type SettingSources } from './options.js'

export { InvalidCerebriumConfigError }

/** The plugin options that cerebrium.toml or the environment can set. */
type CerebriumOption = 'gracePeriod' | 'readinessDelay' | 'maxConcurrency' | 'readyPath' | 'healthPath'
export type CerebriumDerivedOptions = Pick<GracefulTerminationOptions, CerebriumOption> & {
  /** Where each came from (the toml, the environment, the app), for the plugin's start-up line. */
  [kSettingSources]?: SettingSources
}

export interface CerebriumOptionsInput {
  /** Path to the toml file. Default: 'cerebrium.toml' in the working directory. */
  file?: string
  /** Where GRACE_PERIOD_MS, READINESS_DELAY_MS, MAX_CONCURRENCY and PORT are read. Default: process.env. */
  env?: Record<string, string | undefined>
  /** The app's own settings: they win over the toml, and each contradiction is logged as a warning. */
  options?: CerebriumDerivedOptions
  /** Receives those warnings (pass fastify.log). Default: process.emitWarning. */
  log?: { warn (obj: object, msg: string): void }
}

export interface CerebriumSettings {
  /** For the plugin: the toml's values, over them the app's options, over those the environment. */
  options: CerebriumDerivedOptions
  /** PORT, else [cerebrium.runtime.custom] port; undefined when neither is set. */
  port: number | undefined
  /** The absolute path that was read. */
  file: string
  /** false when no file is there: the options then come from the app and the environment only. */
  found: boolean
}

/** Environment variables that override the toml, for an operator who cannot edit the image. */
const ENV_OVERRIDES = [
  { option: 'gracePeriod', name: 'GRACE_PERIOD_MS', min: 1, max: MAX_DURATION_MS },
  { option: 'readinessDelay', name: 'READINESS_DELAY_MS', min: 0, max: MAX_DURATION_MS },
  { option: 'maxConcurrency', name: 'MAX_CONCURRENCY', min: 1, max: Number.MAX_SAFE_INTEGER }
] as const

type Table = Record<string, unknown>

/** An integer as TOML writes one (parsed as a BigInt): 900.0 is a float, and is refused. */
const tomlInteger = (min: number, max: number): Check<number> => (value, fail) =>
  integer(min, max)(typeof value === 'bigint' ? Number(value) : NaN, fail)

/** An empty endpoint is Cerebrium's way of saying "probe over TCP": the plugin then keeps its own route. */
const endpoint: Check<string | undefined> = (value, fail) => value === '' ? undefined : routePath(value, fail)

/** A toml key that sets a plugin option, and what goes wrong when the app disagrees with it. */
interface TomlOption {
  key: string
  option: CerebriumOption
  /** The option's value for the toml's; calls fail() with what is allowed when that is wrong. */
  toOption: Check<number | string | undefined>
  consequence: string
  /** What a file without the key means on Cerebrium: its documented default, if there is one, and what to tell. */
  whenMissing?: { value?: number, message: string }
}

const TOML_OPTIONS: TomlOption[] = [
  {
    key: 'cerebrium.scaling.response_grace_period',
    option: 'gracePeriod',
    toOption: (value, fail) => tomlInteger(1, Math.floor(MAX_DURATION_MS / 1000))(value, fail) * 1000,
    consequence: 'Cerebrium sends SIGKILL response_grace_period seconds after SIGTERM, and the drain must end before it',
    whenMissing: {
      message: "Cerebrium's pages disagree on what it then waits between SIGTERM and SIGKILL: its graceful-termination page " +
        'says the instance is terminated right after SIGTERM (unset or 0), its TOML reference gives a default of 3600 s. ' +
        'Set it to about 1.5 times your longest request; until then the plugin plans on its own gracePeriod'
    }
  },
  {
    key: 'cerebrium.scaling.replica_concurrency',
    option: 'maxConcurrency',
    toOption: tomlInteger(1, Number.MAX_SAFE_INTEGER),
    consequence: 'Cerebrium routes up to replica_concurrency requests at once to each replica; ' +
      'keep them equal, or the replica refuses work it was sent, or runs more than it was sized for',
    whenMissing: {
      value: 10,
      message: "Cerebrium's TOML reference gives it a default of 10, so maxConcurrency is 10; set it to say so"
    }
  },
  {
    key: 'cerebrium.runtime.custom.readycheck_endpoint',
    option: 'readyPath',
    toOption: endpoint,
    consequence: 'Cerebrium probes that path and stops routing to a replica that fails it'
  },
  {
    key: 'cerebrium.runtime.custom.healthcheck_endpoint',
    option: 'healthPath',
    toOption: endpoint,
    consequence: 'Cerebrium probes that path and restarts a replica that fails it'
  }
]
const PORT_KEY = 'cerebrium.runtime.custom.port'

/** A toml option as one file sets it, or as Cerebrium's default has it when the file leaves it out. */
type TomlSetting = Omit<TomlOption, 'toOption' | 'whenMissing'> & { tomlValue: number | string, optionValue: number | string, defaulted: boolean }

/**
 * Reads the settings of a Cerebrium deployment that shape the shutdown, so the platform and the
 * process agree on them from one file: response_grace_period is when Cerebrium sends SIGKILL,
 * replica_concurrency how many requests it routes to one replica, and the two endpoints are what
 * it probes. A missing file gives the defaults; a malformed one throws, naming file, key and value.
 */
export function cerebriumOptions ({
  file = 'cerebrium.toml',
  env = process.env,
  options = {},
  log
}: CerebriumOptionsInput = {}): CerebriumSettings {
  const path = resolve(file)
  const toml = readToml(path)
  const fromEnv = ENV_OVERRIDES.flatMap(override => {
    const value = envInteger(env, override.name, override.min, override.max)
    return value === undefined ? [] : [{ ...override, value }]
  })
  const fromApp = Object.entries(options).filter(([, value]) => value !== undefined)
  const merged: CerebriumDerivedOptions = {
    // Cerebrium stops routing to a replica before it sends SIGTERM, even where it runs on Kubernetes.
    readinessDelay: 0,
    ...Object.fromEntries(toml.settings.map(setting => [setting.option, setting.optionValue])),
    ...Object.fromEntries(fromApp),
    ...Object.fromEntries(fromEnv.map(override => [override.option, override.value]))
  }
  const sources: SettingSources = {
    readinessDelay: 'Cerebrium: routing stops before SIGTERM',
    ...Object.fromEntries(toml.settings.map(setting =>
      [setting.option, setting.defaulted ? `Cerebrium's default ${setting.key}` : `${basename(path)} ${setting.key}`])),
    ...Object.fromEntries(fromApp.map(([option]) => [option, 'option'])),
    ...Object.fromEntries(fromEnv.map(override => [override.option, `environment ${override.name}`]))
  }

  for (const { key, message } of toml.missing) {
    warn(log, { tomlKey: key, file: path }, `${path} has no ${key}: ${message}`)
  }
  for (const setting of toml.settings) {
    const value = merged[setting.option]
    if (value === setting.optionValue) continue
    const source = fromEnv.find(override => override.option === setting.option)?.name ?? "the app's options"
    const converted = setting.tomlValue === setting.optionValue ? '' : ` (${setting.optionValue})`
    const tomlSays = setting.defaulted
      ? `has no ${setting.key}, whose default is ${formatValue(setting.tomlValue)}`
      : `has ${setting.key} = ${formatValue(setting.tomlValue)}${converted}`
    warn(log, { option: setting.option, value, source, tomlKey: setting.key, tomlValue: setting.tomlValue, file: path },
      `${setting.option} is ${formatValue(value)} (from ${source}) but ${path} ${tomlSays}: ${setting.consequence}`)
  }

  return {
    options: { ...merged, [kSettingSources]: sources },
    port: envInteger(env, 'PORT', 0, 65_535) ?? toml.port,
    file: path,
    found: toml.found
  }
}

interface TomlRead {
  found: boolean
  settings: TomlSetting[]
  /** Keys the file leaves out that Cerebrium's behaviour depends on, with what to tell of each. */
  missing: Array<{ key: string, message: string }>
  port: number | undefined
}

function readToml (path: string): TomlRead {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { found: false, settings: [], missing: [], port: undefined }
    throw new InvalidCerebriumConfigError(`${path} cannot be read: ${(err as Error).message}`, { cause: err })
  }

  let document: Table
  try {
    // Integers as BigInt keep `900` and `900.0` apart: Cerebrium wants integers here.
    document = parse(text, { integersAsBigInt: true })
  } catch (err) {
    if (!(err instanceof TomlError)) throw err
    throw new InvalidCerebriumConfigError(
      `${path} is not valid TOML (line ${err.line}, column ${err.column}): ${err.message.split('\n')[0]}\n${err.codeblock}`,
      { cause: err })
  }

  const missing: TomlRead['missing'] = []
  const settings = TOML_OPTIONS.flatMap(({ key, option, toOption, consequence, whenMissing }): TomlSetting[] => {
    const value = lookup(path, document, key)
    if (value === undefined && whenMissing !== undefined) {
      missing.push({ key, message: whenMissing.message })
      const tomlValue = whenMissing.value
      return tomlValue === undefined ? [] : [{ option, key, tomlValue, optionValue: tomlValue, consequence, defaulted: true }]
    }
    const optionValue = value === undefined ? undefined : toOption(value, invalidToml(path, key, value))
    if (optionValue === undefined) return []
    return [{ option, key, tomlValue: typeof value === 'bigint' ? Number(value) : optionValue, optionValue, consequence, defaulted: false }]
  })
  const port = lookup(path, document, PORT_KEY)
  return {
    found: true,
    settings,
    missing,
    port: port === undefined ? undefined : tomlInteger(1, 65_535)(port, invalidToml(path, PORT_KEY, port))
  }
}

/** The fail() of a toml key: an error naming the file, the key and the value as it was written. */
const invalidToml = (path: string, key: string, value: unknown): Fail => allowed => {
  throw new InvalidCerebriumConfigError(`${path}: ${key} must be ${allowed}, received ${describeToml(value)}`)
}

/** A toml value as it was written: a float keeps its decimal point, so 900.0 is not shown as 900. */
function describeToml (value: unknown): string {
  if (typeof value === 'bigint') return String(value)
  if (typeof value === 'number' && Number.isInteger(value)) return value.toFixed(1)
  if (typeof value === 'object' && value !== null) {
    return JSON.stringify(value, (_key, item: unknown) => typeof item === 'bigint' ? Number(item) : item)
  }
  return formatValue(value)
}

/** The value at a dotted key, or undefined; each step on the way must be a table. */
function lookup (path: string, document: Table, key: string): unknown {
  const parts = key.split('.')
  let value: unknown = document
  for (const [depth, part] of parts.entries()) {
    if (value === undefined) return undefined
    if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) {
      invalidToml(path, parts.slice(0, depth).join('.'), value)('a table')
    }
    value = (value as Table)[part]
  }
  return value
}

/** An unset or empty variable overrides nothing; anything else must be a plain decimal integer. */
function envInteger (env: Record<string, string | undefined>, name: string, min: number, max: number): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  return decimalInteger(min, max)(raw, allowed => {
    throw new InvalidOptionError(`${name} (environment variable)`, allowed, formatValue(raw))
  })
}

function warn (log: CerebriumOptionsInput['log'], fields: object, message: string): void {
  if (log) log.warn(fields, message)
  else process.emitWarning(message, { code: 'FST_GRACEFUL_CEREBRIUM_MISMATCH' })
}
