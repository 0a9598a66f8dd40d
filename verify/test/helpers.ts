// Running the bin as a user runs it: a child process, its stdout, stderr and exit code.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Report, RequestCounts } from '../src/index.js'

export const verifyRoot = fileURLToPath(new URL('..', import.meta.url))
export const repoRoot = join(verifyRoot, '..')
export const fixture = (name: string): string => join(verifyRoot, 'test', 'fixtures', name)

// The bin runs under the TypeScript loaders that run this file (tap's, in the suite; tsx too
// where it runs without coverage), so its sources are compiled one way in every process and
// their coverage merges; tsx otherwise.
const typeScriptLoader = process.execArgv.filter(arg => /^--import=.*(typescript|tsx)/.test(arg))
const bin = [...(typeScriptLoader.length > 0 ? typeScriptLoader : ['--import', 'tsx']), join(verifyRoot, 'src', 'bin.ts')]

export interface BinRun { code: number | null, stdout: string, stderr: string }

interface Teardown { teardown (fn: () => unknown): void }

/** Starts the bin; teardown kills it, so a failing test leaves nothing behind. */
export function spawnBin (t: Teardown, args: string[], { cwd = repoRoot, env = process.env }: { cwd?: string, env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(process.execPath, [...bin, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  return child
}

export async function runBin (t: Teardown, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<BinRun> {
  const child = spawnBin(t, args, options)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

/** Runs verify with --json; the report, and the bin's exit code. */
export async function verifyJson (t: Teardown, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null, report: Report, stderr: string }> {
  const { code, stdout, stderr } = await runBin(t, ['verify', '--json', ...args], options)
  let report: Report
  try {
    report = JSON.parse(stdout)
  } catch {
    throw new Error(`verify printed no JSON report (exit ${code})\nstdout: ${stdout}\nstderr: ${stderr}`)
  }
  return { code, report, stderr }
}

/** Every request is in exactly one class: the classes add up to the total. */
export function classified (requests: RequestCounts): number {
  const statuses = Object.values(requests.status).reduce((sum, n) => sum + n, 0)
  return requests.ok + statuses + requests.refused503 + requests.connectionRefused + requests.streamRefused + requests.reset + requests.timeout
}
