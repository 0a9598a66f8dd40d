// What every benchmark shares: the servers under test, run as child processes, and the shape
// of a figure for the README.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import http2 from 'node:http2'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { baseEnv, fixturePath, startCommand, type AppProcess, type Teardown } from '../test/helpers/app-process.js'
import { request } from '../test/helpers/http.js'

export interface Figure {
  /** What is measured, and how. */
  name: string
  /** The measured figure, with the detail that lets a reader judge it. */
  result: string
  target: string
  /** undefined for a comparison, which has no target to meet. */
  met?: boolean
}

const cleanups: Array<() => unknown> = []

/** Where a benchmark's servers hang their cleanup (test helpers take it as tap's `t`). */
export const servers: Teardown = { teardown: fn => { cleanups.push(fn) } }

/** Kills every server still running: after each benchmark, and when one fails. */
export async function stopServers (): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
}

/**
 * test/fixtures/service.ts in its own process: the example app's routes, with the plugin and its
 * defaults, or as bare Fastify. Requests are not logged.
 */
export interface Service {
  graceful: boolean
  /** The plugin's options, with graceful. */
  options?: object
  nodeArgs?: string[]
  /** Requests logged ('incoming request'), for a benchmark that waits for one. */
  logRequests?: boolean
  /** The service file: this tree's, or an earlier version's (serviceAt, pluginAt). */
  service?: string
  /** The only CPU the server may run on (taskset), so that the load generator never takes its core. */
  cpu?: number
  /** Environment variables the fixture reads beyond these (HTTP2, MEASURE_GC, BARE_CLOSE_ON_SIGTERM). */
  env?: NodeJS.ProcessEnv
}

export function startService ({ graceful, options = {}, nodeArgs = [], logRequests = false, service = fixturePath('service.ts'), cpu, env = {} }: Service): Promise<AppProcess> {
  const node = [process.execPath, ...nodeArgs, '--import', 'tsx', service]
  const [command, ...args] = cpu === undefined ? node : ['taskset', '-c', String(cpu), ...node]
  // taskset executes node in its own process: the pid, the signals and the exit are node's.
  return startCommand(servers, command!, args, {
    env: {
      ...baseEnv(),
      ...env,
      GRACEFUL: graceful ? '1' : '0',
      PLUGIN_OPTIONS: JSON.stringify(options),
      LOG_REQUESTS: logRequests ? '1' : '0'
    }
  })
}

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * The service fixture with the plugin as it was at a commit, to measure a change side by side
 * with what it changed: that commit's lib/ and fixture, extracted under .bench/ in this
 * repository, where the packages resolve. Returns the service file's path.
 */
export function serviceAt (ref: string): string {
  const commit = execFileSync('git', ['rev-parse', '--short', `${ref}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim()
  const dir = `${ROOT}.bench/${commit}`
  const service = `${dir}/test/fixtures/service.ts`
  if (!existsSync(service)) {
    mkdirSync(dir, { recursive: true })
    execFileSync('sh', ['-c', `git archive ${commit} lib test/fixtures/service.ts | tar -x -C "${dir}"`], { cwd: ROOT })
  }
  return service
}

/**
 * This tree's service fixture with the plugin's lib/ as it was at a commit: the same routes and
 * measuring on both sides, only the plugin differs. Returns the service file's path.
 */
export function pluginAt (ref: string): string {
  const commit = execFileSync('git', ['rev-parse', '--short', `${ref}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim()
  const dir = `${ROOT}.bench/${commit}-lib`
  if (!existsSync(`${dir}/lib`)) {
    mkdirSync(dir, { recursive: true })
    execFileSync('sh', ['-c', `git archive ${commit} lib | tar -x -C "${dir}"`], { cwd: ROOT })
  }
  mkdirSync(`${dir}/test/fixtures`, { recursive: true })
  const service = `${dir}/test/fixtures/service.ts`
  copyFileSync(fixturePath('service.ts'), service)
  return service
}

export interface Usage { cpuMicros: number, gcMicros: number, minorGcs: number, majorGcs: number, rss: number, heapUsed: number }

/**
 * The server's CPU time so far, the main thread's GC pauses and collections (with MEASURE_GC=1) and its memory;
 * `afterGc` forces a full collection first. `http2`: the server speaks only HTTP/2.
 */
export async function usage (port: number, { afterGc = false, http2: overHttp2 = false } = {}): Promise<Usage> {
  const path = afterGc ? '/usage?gc=1' : '/usage'
  const { status, text } = overHttp2 ? await http2Get(port, path) : await request(port, path)
  if (status !== 200) throw new Error(`/usage answered ${status}: ${text}`)
  return JSON.parse(text)
}

/** One GET on a session of its own, to a server that speaks HTTP/2 without TLS. */
async function http2Get (port: number, path: string): Promise<{ status: number, text: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`)
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject)
      const stream = session.request({ ':path': path })
      const chunks: Buffer[] = []
      let status = 0
      stream.on('response', headers => { status = Number(headers[':status']) })
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }))
      stream.on('error', reject)
    })
  } finally {
    session.close()
  }
}

/**
 * V8 starts a process's young generation at 1 MB and grows it as it sees fit: twins under the
 * same load ended up scavenging 11, 44 and 66 times per 10,000 requests, which moved their CPU
 * time per request by 20 %. Every server starts at the size a busy one grows to (16 MB semi-spaces,
 * V8's largest default on 64 bits), so that luck is out of the comparison.
 */
export const FULL_YOUNG_GENERATION = ['--min-semi-space-size=16']

/** The machine's load average over the last minute: what else ran beside the benchmark. */
export const loadAverage = (): number => os.loadavg()[0]!

/**
 * The cost benchmarks pin the server to CPU 0 and the load to CPU 1, so that neither takes the
 * other's core. Says why they cannot, or undefined when they can.
 */
export function pinningUnavailable (): string | undefined {
  if (os.availableParallelism() < 2) return 'pinning needs two CPUs'
  try {
    execFileSync('taskset', ['-c', '0', 'true'])
  } catch {
    return 'taskset is missing (util-linux): apt-get install -y util-linux'
  }
  return undefined
}

/**
 * Runs `work` with this process (every thread) pinned to one CPU, then lets it run anywhere
 * again: for a benchmark whose client runs here rather than in a child.
 */
export async function pinnedTo<T> (cpu: number, work: () => Promise<T>): Promise<T> {
  const all = `0-${os.availableParallelism() - 1}`
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' })
  try {
    return await work()
  } finally {
    execFileSync('taskset', ['-a', '-p', '-c', all, String(process.pid)], { stdio: 'ignore' })
  }
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** A set of rounds summed up: the median, a 95 % confidence interval for it, and the range. */
export interface Spread { median: number, low: number, high: number, min: number, max: number, n: number }

/**
 * The median of the rounds with its 95 % confidence interval, taken from the rounds' own order
 * (the k-th smallest and k-th largest, k from the binomial distribution): it assumes no shape of
 * the noise, only that rounds are independent. With fewer than 6 rounds it is the range.
 */
export function spread (values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b)
  const n = sorted.length
  // The largest k with P(Binomial(n, 1/2) < k) <= 2.5 %: the median lies between the k-th
  // smallest and the k-th largest round at least 95 % of the time.
  let k = 0
  let below = 0
  for (let i = 0, term = 2 ** -n; i < n; i++) {
    if (below + term > 0.025) break
    below += term
    k = i + 1
    term = term * (n - i) / (i + 1)
  }
  const low = sorted[Math.max(k - 1, 0)]!
  const high = sorted[n - Math.max(k, 1)]!
  return { median: median(sorted), low, high, min: sorted[0]!, max: sorted[n - 1]!, n }
}

/** "1.012 (95 % CI 0.991–1.030; rounds 0.93–1.10, n = 20)". */
export function describeSpread ({ median: middle, low, high, min, max, n }: Spread, digits: number): string {
  return `${round(middle, digits)} (95 % CI ${round(low, digits)}–${round(high, digits)}; rounds ${round(min, digits)}–${round(max, digits)}, n = ${n})`
}

export const round = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** A benchmark whose load produced errors measures nothing: it stops there. */
export function assertClean (result: { errors: number, non2xx: number, requests: { total: number } }, what: string): void {
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`${what}: ${result.errors} errors and ${result.non2xx} non-2xx in ${result.requests.total} requests`)
  }
}
