// The real PM2 (the devDependency), run through its own command line as a user runs it, with a
// daemon of its own: its PM2_HOME is a fresh temporary directory, never the user's ~/.pm2.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { LogLine, Teardown } from './app-process.js'

const PM2_CLI = fileURLToPath(new URL('../../node_modules/pm2/bin/pm2', import.meta.url))

/** What a process's pm2_env says of it in `pm2 jlist`. */
export interface Pm2Process {
  name: string
  pm_id: number
  pid: number
  pm2_env: { status: string, restart_time: number }
}

/** An app of an ecosystem file, as PM2 documents its fields. */
export interface Pm2App {
  name: string
  script: string
  cwd: string
  exec_mode: 'cluster' | 'fork'
  instances?: number
  env?: Record<string, string>
  kill_timeout?: number
  wait_ready?: boolean
  listen_timeout?: number
  shutdown_with_message?: boolean
}

export interface Pm2Daemon {
  home: string
  /** Runs `pm2 ...args`; rejects when it exits with another code than 0. */
  run (...args: string[]): Promise<{ stdout: string, elapsedMs: number }>
  list (): Promise<Pm2Process[]>
  /** Writes the ecosystem file and starts its app; `pm2 delete` at teardown. */
  start (t: Teardown, app: Pm2App): Promise<void>
  /** The JSON lines the app's processes wrote to stdout, as PM2 keeps them in its log files. */
  appLogs (name: string): LogLine[]
  /** What the daemon logged about the app's processes: `App [name:_old_0] exited with code [1] via signal [SIGINT]`. */
  daemonLog (): string[]
}

/**
 * The environment of the pm2 command and so of its daemon and apps: this one, less what the test
 * runner adds to follow its own processes (PM2's are not the suite's), plus PM2's home. PM2 checks
 * for a newer version over the network on its first run in a home and daily after: never here.
 */
function pm2Env (home: string, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, PM2_HOME: home, PM2_DISABLE_VERSION_CHECK: 'true' }
  for (const name of Object.keys(env)) {
    if (name === 'NODE_OPTIONS' || name === 'NODE_V8_COVERAGE' || /^_?TAP/.test(name)) delete env[name]
  }
  return env
}

/** Every pid PM2 knows of in this home: its daemon's and its apps'. */
function pidsIn (home: string): number[] {
  const files = [join(home, 'pm2.pid'), ...existsSync(join(home, 'pids')) ? readdirSync(join(home, 'pids')).map(file => join(home, 'pids', file)) : []]
  return files.flatMap(file => {
    try { return [Number(readFileSync(file, 'utf8'))] } catch { return [] }
  }).filter(pid => Number.isInteger(pid) && pid > 0)
}

function killAll (pids: number[]): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
}

/**
 * A PM2 daemon for one test file. Teardown runs `pm2 kill`, then kills whatever it left (its own pid
 * and its apps'), then removes the home; if the test process dies before its teardown, its exit does.
 */
export function startPm2Daemon (t: Teardown, env: NodeJS.ProcessEnv = process.env): Pm2Daemon {
  // Short: PM2's Unix sockets live in it, and a socket's path is limited to about 100 bytes.
  const home = mkdtempSync(join(tmpdir(), 'pm2-'))
  // PM2's first-run marker: without it the command prints a banner and checks for updates online.
  writeFileSync(join(home, 'touch'), String(Date.now()))
  const cliEnv = pm2Env(home, env)
  const seenPids = new Set<number>()
  const remember = (): void => { for (const pid of pidsIn(home)) seenPids.add(pid) }
  const lastResort = (): void => killAll([...seenPids])
  process.once('exit', lastResort)

  const run = (...args: string[]): Promise<{ stdout: string, elapsedMs: number }> => new Promise((resolve, reject) => {
    const startedAt = performance.now()
    const child = spawn(process.execPath, [PM2_CLI, ...args], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', code => {
      remember()
      if (code === 0) resolve({ stdout, elapsedMs: performance.now() - startedAt })
      else reject(new Error(`pm2 ${args.join(' ')} exited with code ${code}\n${stdout}\n${stderr}`))
    })
  })

  t.teardown(async () => {
    remember()
    await run('kill').catch(() => {})
    killAll([...seenPids])
    process.removeListener('exit', lastResort)
    rmSync(home, { recursive: true, force: true })
  })

  const appLogs = (name: string): LogLine[] => readdirSync(join(home, 'logs'))
    .filter(file => file.startsWith(`${name}-out`))
    .flatMap(file => readFileSync(join(home, 'logs', file), 'utf8').split('\n'))
    .flatMap(line => {
      try { return [JSON.parse(line) as LogLine] } catch { return [] }
    })

  return {
    home,
    run,
    async list () {
      return JSON.parse((await run('jlist')).stdout) as Pm2Process[]
    },
    async start (t, app) {
      const file = join(app.cwd, `${app.name}.config.json`)
      writeFileSync(file, JSON.stringify({ apps: [app] }, null, 2))
      t.teardown(() => run('delete', app.name).catch(() => {}))
      await run('start', file)
    },
    appLogs,
    daemonLog: () => readFileSync(join(home, 'pm2.log'), 'utf8').split('\n')
  }
}

/** Resolves once `count` lines of the app's logs match; polls PM2's log files, which are all there is. */
export async function waitForAppLogs (daemon: Pm2Daemon, name: string, match: (line: LogLine) => boolean, count: number, timeoutMs = 20_000): Promise<LogLine[]> {
  const giveUpAt = performance.now() + timeoutMs
  for (;;) {
    const lines = daemon.appLogs(name).filter(match)
    if (lines.length >= count) return lines
    if (performance.now() > giveUpAt) throw new Error(`${count} matching lines expected in the logs of ${name}, ${lines.length} found:\n${daemon.appLogs(name).map(line => JSON.stringify(line)).join('\n')}`)
    await sleep(25)
  }
}
