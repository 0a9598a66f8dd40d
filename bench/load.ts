// The load generators of the cost benchmarks, each a process of its own pinned to one CPU:
// autocannon for HTTP/1.1, h2load (Debian's nghttp2-client) for HTTP/2.
import { execFile, execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

export interface Load {
  /** Requests answered with a 2xx. */
  answered: number
  seconds: number
}

export interface LoadOptions {
  port: number
  path: string
  seconds: number
  cpu: number
  /** Connections kept open by the load generator. */
  connections: number
  /** HTTP/2 only: streams open at once on each connection. */
  streams?: number
}

export type LoadGenerator = (options: LoadOptions) => Promise<Load>

function run (command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

const autocannonBin = join(dirname(createRequire(import.meta.url).resolve('autocannon/package.json')), 'autocannon.js')

/** HTTP/1.1 keep-alive connections, one request at a time on each. */
export const autocannon: LoadGenerator = async ({ port, path, seconds, cpu, connections }) => {
  const output = await run('taskset', ['-c', String(cpu), process.execPath, autocannonBin,
    '--json', '--connections', String(connections), '--duration', String(seconds), `http://127.0.0.1:${port}${path}`])
  const result = JSON.parse(output) as { errors: number, non2xx: number, duration: number, requests: { total: number }, '2xx': number }
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`autocannon: ${result.errors} errors and ${result.non2xx} non-2xx in ${result.requests.total} requests`)
  }
  return { answered: result['2xx'], seconds: result.duration }
}

/** Says why h2load cannot run, or undefined when it can. */
export function h2loadMissing (): string | undefined {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' })
    return undefined
  } catch {
    return 'h2load is missing: the HTTP/2 figures need it (apt-get install -y nghttp2-client)'
  }
}

/** HTTP/2 without TLS (prior knowledge), `streams` requests at once on each connection. */
export const h2load: LoadGenerator = async ({ port, path, seconds, cpu, connections, streams = 1 }) => {
  const output = await run('taskset', ['-c', String(cpu), 'h2load', '--clients', String(connections),
    '--max-concurrent-streams', String(streams), '--duration', String(seconds), `http://127.0.0.1:${port}${path}`])
  // "finished in 3.00s, ..." (or "999.31ms" under a second) and
  // "requests: 120 total, 120 started, 120 done, 120 succeeded, 0 failed, 0 errored, 0 timeout"
  const finished = /finished in ([\d.]+)(m?s),/.exec(output)
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output)
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output)
  if (finished === null || requests === null || codes === null) throw new Error(`h2load: unexpected output\n${output}`)
  const failed = Number(requests[2]) + Number(requests[3]) + Number(requests[4])
  const non2xx = Number(codes[2]) + Number(codes[3]) + Number(codes[4])
  if (failed > 0 || non2xx > 0) throw new Error(`h2load: ${failed} failed and ${non2xx} non-2xx\n${output}`)
  // Every 2xx the server sent, those that came after the duration's end included.
  return { answered: Number(codes[1]), seconds: Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1) }
}
