import { spawn } from 'node:child_process'
import type { EngineName } from './arguments.js'
import { StartError } from './readiness.js'
import { LastLines } from './service.js'

export interface EngineRun {
  code: number | null
  stdout: string
  /** The last lines of stdout and stderr, for a failure's report. */
  lines: string[]
}

/**
 * Runs one command of the engine's CLI (docker and podman take the same ones) to its end. Aborted,
 * the command gets SIGTERM, as Ctrl+C would give it, and the promise rejects with the reason.
 */
export function runEngine (engine: EngineName, args: string[], { env, signal }: { env: NodeJS.ProcessEnv, signal?: AbortSignal | undefined }): Promise<EngineRun> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted()
    const child = spawn(engine, args, { env, stdio: ['ignore', 'pipe', 'pipe'], signal, killSignal: 'SIGTERM' })
    const lines = new LastLines()
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    lines.read(child.stdout)
    lines.read(child.stderr)
    child.once('error', err => {
      if (err.name === 'AbortError') reject(signal!.reason)
      else reject(new StartError(`${engine} could not be run: ${err.message}`))
    })
    child.once('close', code => { if (!signal?.aborted) resolve({ code, stdout, lines: lines.lines }) })
  })
}

/** Whether the engine is on the PATH and its daemon (or, for podman, its storage) answers. */
async function answers (engine: EngineName, env: NodeJS.ProcessEnv, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    return (await runEngine(engine, ['info'], { env, signal })).code === 0
  } catch (err) {
    if (!(err instanceof StartError)) throw err
    return false
  }
}

/**
 * The engine to use: the one named, or for 'auto' the first of docker and podman that answers
 * (docker's client alone, without a daemon, does not).
 */
export async function chooseEngine (engine: EngineName | 'auto', env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<EngineName> {
  if (engine !== 'auto') return engine
  for (const candidate of ['docker', 'podman'] as const) {
    if (await answers(candidate, env, signal)) return candidate
  }
  throw new StartError('--engine auto: neither docker nor podman is on the PATH with an engine that answers `info`')
}
