import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

export interface LogLine {
  level?: number
  msg?: string
  instance?: number
  [field: string]: unknown
}

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
  exited: Promise<Exit>
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog (match: (line: LogLine) => boolean, what?: string): Promise<LogLine>
  kill (signal: NodeJS.Signals): void
}

interface Tap {
  teardown (fn: () => unknown): void
}

export const fixturePath = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

/**
 * Spawns a fixture as its own process (as a container runs it), parses its pino lines and
 * resolves once every instance listens. Teardown kills it, so a failing test leaves nothing behind.
 */
export async function startApp (t: Tap, {
  fixture = 'app.ts',
  options = {},
  fastify = {},
  instances = 1
}: { fixture?: string, options?: object, fastify?: object, instances?: number } = {}): Promise<AppProcess> {
  const app = launch(t, ['--import', 'tsx', fixturePath(fixture)], {
    FIXTURE_OPTIONS: JSON.stringify(options),
    FIXTURE_FASTIFY: JSON.stringify(fastify),
    FIXTURE_INSTANCES: String(instances)
  })
  const ports: number[] = []
  for (let instance = 0; instance < instances; instance++) {
    ports.push(await listeningPort(app, line => line.instance === instance, `instance ${instance} listening`))
  }
  return { ...app, ports, port: ports[0]! }
}

/** Runs `node ...args` (a built app, as its container would) and resolves once it listens. */
export async function startNodeApp (t: Tap, args: string[], env: NodeJS.ProcessEnv = {}): Promise<AppProcess> {
  const app = launch(t, args, env)
  const port = await listeningPort(app, () => true, `${args.join(' ')} listening`)
  return { ...app, ports: [port], port }
}

type Launched = Omit<AppProcess, 'ports' | 'port'>

function launch (t: Tap, args: string[], env: NodeJS.ProcessEnv): Launched {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal, at: performance.now() }) as Exit)
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })

  const logs: LogLine[] = []
  const watchers = new Set<{ match: (line: LogLine) => boolean, resolve: (line: LogLine) => void }>()
  const stderr: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk))
  createInterface({ input: child.stdout! }).on('line', raw => {
    let line: LogLine
    try { line = JSON.parse(raw) } catch { line = { msg: raw } }
    logs.push(line)
    for (const watcher of watchers) {
      if (watcher.match(line)) { watchers.delete(watcher); watcher.resolve(line) }
    }
  })

  function waitForLog (match: (line: LogLine) => boolean, what = 'a log line'): Promise<LogLine> {
    const seen = logs.find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      watchers.add({ match, resolve })
      exited.then(exit => reject(new Error(
        `process exited (code ${exit.code}, signal ${exit.signal}) before ${what}\n` +
        `stdout: ${logs.map(l => JSON.stringify(l)).join('\n')}\nstderr: ${stderr.join('')}`
      )))
    })
  }

  return { child, logs, exited, waitForLog, kill: signal => { child.kill(signal) } }
}

async function listeningPort (app: Launched, match: (line: LogLine) => boolean, what: string): Promise<number> {
  const listening = await app.waitForLog(
    line => match(line) && /Server listening at http:\/\/127\.0\.0\.1:\d+/.test(line.msg ?? ''), what)
  return Number(/:(\d+)$/.exec(listening.msg!)![1])
}

export const hasMessage = (pattern: RegExp) => (line: LogLine): boolean => pattern.test(line.msg ?? '')
