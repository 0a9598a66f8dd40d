import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import type { EngineName, VerifyArguments } from './arguments.js'
import { parseDockerfile, type RunStage } from './dockerfile.js'
import { formatValue, UsageError } from './errors.js'
import { gracePeriodFromToml } from './toml.js'

/** The service run on this machine, as a process in a group of its own. */
export interface ProcessSpec {
  kind: 'process'
  command: string[]
  cwd: string
  /** Added to verify's own environment (the Dockerfile's ENV). */
  env: Record<string, string>
  /** Set when the command came from a Dockerfile. */
  dockerfile: { path: string, shellForm: boolean } | undefined
}

/** The service as its image runs it: built from the Dockerfile, run and stopped by the engine. */
export interface ContainerSpec {
  kind: 'container'
  engine: EngineName | 'auto'
  /** As given on the command line, for the report. */
  dockerfile: string
  /** Absolute path of the Dockerfile. */
  dockerfilePath: string
  /** The build context: the Dockerfile's directory. */
  context: string
  /** The image's command, or what replaces it (the command after --). */
  command: string[]
  /** The command after --, passed to the engine's run; undefined: the image's own. */
  commandOverride: string[] | undefined
  shellForm: boolean
  /** The port the service listens on in the container: the Dockerfile's EXPOSE. */
  containerPort: number
}

export type ServiceSpec = ProcessSpec | ContainerSpec

/** Everything a run needs: the arguments with their defaults filled in from the files they name. */
export interface VerifyOptions extends Omit<VerifyArguments, 'command' | 'dockerfile' | 'engine' | 'signal' | 'gracePeriod' | 'timeout' | 'json'> {
  service: ServiceSpec
  signal: NodeJS.Signals
  gracePeriod: number
  /** Where gracePeriod came from: '--grace-period', the toml's path, or 'default'. */
  gracePeriodSource: string
  timeout: number
}

const DEFAULT_GRACE_PERIOD_MS = 30_000

/**
 * Reads what the arguments point at: the Dockerfile's run stage, and ./cerebrium.toml for the
 * grace period when --grace-period is not given (the platform waits response_grace_period).
 */
export function resolveSettings (args: VerifyArguments, { cwd = process.cwd() } = {}): VerifyOptions {
  const stage = args.dockerfile === undefined ? undefined : readDockerfile(args.dockerfile, cwd)
  const { gracePeriod, source } = gracePeriodOf(args, cwd)
  // What named the service and how to print the report are resolved here, or are the bin's.
  const { command, dockerfile, engine, json, ...rest } = args
  return {
    ...rest,
    service: serviceSpec(args, stage, cwd),
    signal: args.signal ?? stage?.stopSignal ?? 'SIGTERM',
    gracePeriod,
    gracePeriodSource: source,
    timeout: args.timeout ?? gracePeriod
  }
}

/** --grace-period, else response_grace_period of ./cerebrium.toml, else 30 s. */
function gracePeriodOf (args: VerifyArguments, cwd: string): { gracePeriod: number, source: string } {
  if (args.gracePeriod !== undefined) return { gracePeriod: args.gracePeriod, source: '--grace-period' }
  const toml = join(cwd, 'cerebrium.toml')
  const fromToml = gracePeriodFromToml(toml)
  return fromToml === undefined ? { gracePeriod: DEFAULT_GRACE_PERIOD_MS, source: 'default' } : { gracePeriod: fromToml, source: relative(cwd, toml) }
}

function readDockerfile (file: string, cwd: string): RunStage & { path: string } {
  const path = resolve(cwd, file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new UsageError(`--dockerfile ${formatValue(file)} cannot be read: ${(err as Error).message}`)
  }
  try {
    return { ...parseDockerfile(text), path }
  } catch (err) {
    throw new UsageError(`--dockerfile ${formatValue(file)}: ${(err as Error).message}`)
  }
}

function serviceSpec (args: VerifyArguments, stage: (RunStage & { path: string }) | undefined, cwd: string): ServiceSpec {
  if (stage === undefined) return { kind: 'process', command: args.command, cwd, env: {}, dockerfile: undefined }
  if (args.engine === undefined) {
    // The build context is the Dockerfile's directory: the CMD's paths are relative to it.
    return { kind: 'process', command: stage.command, cwd: dirname(stage.path), env: stage.env, dockerfile: { path: args.dockerfile!, shellForm: stage.shellForm } }
  }
  if (stage.exposedPort === undefined) {
    throw new UsageError(`--dockerfile ${formatValue(args.dockerfile)}: its last stage EXPOSEs no port, so the port the service listens on in the container is unknown`)
  }
  const override = args.command.length > 0 ? args.command : undefined
  return {
    kind: 'container',
    engine: args.engine,
    dockerfile: args.dockerfile!,
    dockerfilePath: stage.path,
    context: dirname(stage.path),
    command: override ?? stage.command,
    commandOverride: override,
    shellForm: override === undefined && stage.shellForm,
    containerPort: stage.exposedPort
  }
}
