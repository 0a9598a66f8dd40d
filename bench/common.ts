// What every benchmark shares: the servers under test, run as child processes, and the shape
// of a figure for the README.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { fixturePath, startNodeApp, type AppProcess, type Teardown } from '../test/helpers/app-process.js'
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
  /** The service file: this tree's, or an earlier version's (serviceAt). */
  service?: string
}

export function startService ({ graceful, options = {}, nodeArgs = [], logRequests = false, service = fixturePath('service.ts') }: Service): Promise<AppProcess> {
  return startNodeApp(servers,
    [...nodeArgs, '--import', 'tsx', service],
    { GRACEFUL: graceful ? '1' : '0', PLUGIN_OPTIONS: JSON.stringify(options), LOG_REQUESTS: logRequests ? '1' : '0' })
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

export interface Usage { cpuMicros: number, rss: number, heapUsed: number }

/** The server's CPU time so far and its memory; `afterGc` forces a full collection first. */
export async function usage (port: number, { afterGc = false } = {}): Promise<Usage> {
  const response = await request(port, afterGc ? '/usage?gc=1' : '/usage')
  if (response.status !== 200) throw new Error(`/usage answered ${response.status}: ${response.text}`)
  return response.json()
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export const round = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** A benchmark whose load produced errors measures nothing: it stops there. */
export function assertClean (result: { errors: number, non2xx: number, requests: { total: number } }, what: string): void {
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`${what}: ${result.errors} errors and ${result.non2xx} non-2xx in ${result.requests.total} requests`)
  }
}
