import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { LogWatcher } from './log-watcher.js'
import { PLATFORM_VARIABLES } from '../../lib/platform.js'

/**
 * This process's environment without the variables that tell a platform, so a test run inside a
 * Kubernetes pod or under PM2 tests what it says; a test that wants a platform sets them itself.
 */
export function baseEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of PLATFORM_VARIABLES) delete env[name]
  return env
}

export interface LogLine {
  level?: number
  msg?: string
  instance?: number
  [field: string]: unknown
}

/** pino's levels, as its lines carry them. */
export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  /** performance.now() in this process when the child's exit was seen */
  at: number
}

export interface AppProcess {
  child: ChildProcess
  /** Listening ports, one per instance, in start order. */
  ports: number[]
  port: number
  logs: LogLine[]
  /** What the process wrote to stderr, chunk by chunk. */
  stderr: string[]
  exited: Promise<Exit>
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog (match: (line: LogLine) => boolean, what?: string): Promise<LogLine>
  kill (signal: NodeJS.Signals): void
}

/** The part of a tap test a helper needs: somewhere to hang its cleanup. */
export interface Teardown {
  teardown (fn: () => unknown): void
}

export const fixturePath = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

// A fixture runs under the TypeScript loaders that run this file (tap's, in the suite; tsx too
// where the suite runs without coverage), so each source file is compiled one way in every
// process and the coverage of all of them merges. tsx's output, a few long lines per file, would
// count every line of a file as covered once it loads.
const typeScriptLoader = process.execArgv.filter(arg => /^--import=.*(typescript|tsx)/.test(arg))

/** `node` arguments that run a TypeScript file. */
export const typeScriptArgs = (file: string): string[] =>
  [...(typeScriptLoader.length > 0 ? typeScriptLoader : ['--import', 'tsx']), file]

export const fixtureArgs = (name: string): string[] => typeScriptArgs(fixturePath(name))

const LISTENING = /Server listening at https?:\/\/127\.0\.0\.1:(\d+)/

/**
 * Spawns a fixture as its own process (as a container runs it), parses its pino lines and
 * resolves once every instance listens. Teardown kills it, so a failing test leaves nothing behind.
 */
export async function startApp (t: Teardown, {
  fixture = 'app.ts',
  options = {},
  fastify = {},
  instances = 1,
  env = {},
  ipc = false
}: { fixture?: string, options?: object, fastify?: object, instances?: number, env?: NodeJS.ProcessEnv, ipc?: boolean } = {}): Promise<AppProcess> {
  const app = spawnProcess(t, process.execPath, fixtureArgs(fixture), {
    ipc,
    env: {
      ...baseEnv(),
      ...env,
      FIXTURE_OPTIONS: JSON.stringify(options),
      FIXTURE_FASTIFY: JSON.stringify(fastify),
      FIXTURE_INSTANCES: String(instances)
    }
  })
  const ports: number[] = []
  for (let instance = 0; instance < instances; instance++) {
    ports.push(await listeningPort(app, line => line.instance === instance, `instance ${instance} listening`))
  }
  return { ...app, ports, port: ports[0]! }
}

/** Runs a command as a container would (e.g. a Dockerfile's CMD) and resolves once it listens on 127.0.0.1. */
export async function startCommand (t: Teardown, command: string, args: string[], options: SpawnOptions = {}): Promise<AppProcess> {
  const app = spawnProcess(t, command, args, options)
  const port = await listeningPort(app, () => true, 'listening on 127.0.0.1')
  return { ...app, ports: [port], port }
}

/** The port of Fastify's 'Server listening at' line, from the first matching line of the process. */
async function listeningPort (app: Pick<AppProcess, 'waitForLog'>, match: (line: LogLine) => boolean, what: string): Promise<number> {
  const listening = await app.waitForLog(line => match(line) && LISTENING.test(line.msg ?? ''), what)
  return Number(LISTENING.exec(listening.msg!)![1])
}

/** Runs `node ...args` (a built app, or a fixture) with env added to this process's. */
export function startNodeApp (t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}): Promise<AppProcess> {
  return startCommand(t, process.execPath, args, { env: { ...baseEnv(), ...env } })
}

/**
 * Spawns a process whose stdout is pino lines, kept for the test to read and await. Its stdin is
 * closed unless `stdin: 'pipe'` asks for a pipe the test writes commands to; with `ipc`, it has
 * an IPC channel too, as PM2 runs its processes (messages through `child`).
 */
export function spawnProcess (t: Teardown, command: string, args: string[],
  { stdin = 'ignore', ipc = false, ...options }: SpawnOptions & { stdin?: 'ignore' | 'pipe', ipc?: boolean } = {}): Omit<AppProcess, 'ports' | 'port'> {
  const child = spawn(command, args, { ...options, stdio: [stdin, 'pipe', 'pipe', ...ipc ? ['ipc' as const] : []] })
  // A command written after the process died fails with EPIPE: its exit, reported to whatever
  // awaits its output, says more.
  child.stdin?.on('error', () => {})
  // 'exit' can come before the last lines of output are read; 'close' comes after them, so the
  // logs are complete once `exited` resolves, while `at` keeps the moment the process ended.
  const exitedAt = once(child, 'exit').then(() => performance.now())
  const exited = once(child, 'close').then(async ([code, signal]) => ({ code, signal, at: await exitedAt }) as Exit)
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })

  const log = new LogWatcher<LogLine>()
  const stderr: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk))
  createInterface({ input: child.stdout! }).on('line', raw => {
    let line: LogLine
    try { line = JSON.parse(raw) } catch { line = { msg: raw } }
    log.add(line)
  })
  exited.then(exit => log.end(what => new Error(
    `process exited (code ${exit.code}, signal ${exit.signal}) before ${what}\n` +
    `stdout: ${log.lines.map(l => JSON.stringify(l)).join('\n')}\nstderr: ${stderr.join('')}`
  )), (err: Error) => log.end(() => err))

  return {
    child,
    logs: log.lines,
    stderr,
    exited,
    waitForLog: (match, what = 'a log line') => log.waitFor(match, what),
    kill: signal => { child.kill(signal) }
  }
}

export const hasMessage = (pattern: RegExp) => (line: LogLine): boolean => pattern.test(line.msg ?? '')

/** Fastify's line for a request it has just received. */
export const isIncomingRequest = (line: LogLine): boolean => line.msg === 'incoming request'

/** Fastify's 'incoming request' line for this URL: the request has reached the app. */
export const requestFor = (url: string) => (line: LogLine): boolean =>
  isIncomingRequest(line) && (line.req as { url?: string } | undefined)?.url === url
