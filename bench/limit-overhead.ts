// What maxConcurrency costs when it never has to queue: req/s of the plugin without a limit (A)
// against the plugin with maxConcurrency far above the load (B), same route, each server in its
// own process, autocannon in this one. Every round starts both servers afresh (one process can be
// luckier than another with its JIT and heap for its whole life), warms them up, then loads them
// A then B, or B then A, in turn, so that drift on the machine falls on both alike. The figure is
// the median of the per-round ratios B/A.
//
//   npm run bench    (BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_PIPELINING override the defaults)
import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const rounds = Number(process.env.BENCH_ROUNDS ?? 6)
const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 100)
const pipelining = Number(process.env.BENCH_PIPELINING ?? 1)
const warmupSeconds = 2
const maxConcurrency = 10_000

interface Variant { name: string, options: object }
const variants: [Variant, Variant] = [
  { name: 'no limit', options: {} },
  { name: `maxConcurrency ${maxConcurrency}`, options: { maxConcurrency } }
]

interface Server { child: ChildProcess, port: number }

async function startServer (options: object): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('server.ts', import.meta.url))], {
    env: { ...process.env, BENCH_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const [line] = await once(createInterface({ input: child.stdout! }), 'line') as [string]
  return { child, port: (JSON.parse(line) as { port: number }).port }
}

/** CPU seconds the process has used so far (Linux), to tell whether the server was the bottleneck. */
function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  // utime and stime, fields 14 and 15 of proc(5), in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100
}

interface Run {
  requestsPerSecond: number
  /** Server CPU time per request, in µs: steadier than req/s when the machine is not idle. */
  cpuMicroseconds: number
}

async function load (server: Server, duration: number): Promise<Run> {
  const cpuBefore = cpuSeconds(server.child.pid!)
  const result = await autocannon({ url: `http://127.0.0.1:${server.port}/hello`, connections, pipelining, duration })
  const serverCpu = cpuSeconds(server.child.pid!) - cpuBefore
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`${result.errors} errors and ${result.non2xx} non-2xx answers: the run is not comparable`)
  }
  return {
    requestsPerSecond: result.requests.total / result.duration,
    cpuMicroseconds: serverCpu * 1e6 / result.requests.total
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

async function stop ({ child }: Server): Promise<void> {
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

/** One round: both servers started afresh and warmed up, then measured in the given order. */
async function roundOf (order: number[]): Promise<[Run, Run]> {
  const servers = await Promise.all(variants.map(variant => startServer(variant.options)))
  try {
    for (const server of servers) await load(server, warmupSeconds)
    const runs: Run[] = []
    for (const index of order) runs[index] = await load(servers[index]!, seconds)
    return runs as [Run, Run]
  } finally {
    await Promise.all(servers.map(stop))
  }
}

console.log(`${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores, Node ${process.version}`)
console.log(`${rounds} rounds of ${seconds} s per variant, ${connections} connections, pipelining ${pipelining}, GET /hello`)

const results: Array<[Run, Run]> = []
console.log(`\n| round | order | A: ${variants[0].name} (req/s) | B: ${variants[1].name} (req/s) | B/A | server CPU per request A / B |`)
console.log('| --- | --- | --- | --- | --- | --- |')
for (let round = 1; round <= rounds; round++) {
  const order = round % 2 === 1 ? [0, 1] : [1, 0]
  const [a, b] = await roundOf(order)
  results.push([a, b])
  console.log(`| ${round} | ${order.map(i => 'AB'[i]).join('')} | ${a.requestsPerSecond.toFixed(0)} | ` +
    `${b.requestsPerSecond.toFixed(0)} | ${(b.requestsPerSecond / a.requestsPerSecond).toFixed(4)} | ` +
    `${a.cpuMicroseconds.toFixed(1)} µs / ${b.cpuMicroseconds.toFixed(1)} µs |`)
}

const ratios = results.map(([a, b]) => b.requestsPerSecond / a.requestsPerSecond)
const medianA = median(results.map(([a]) => a.requestsPerSecond))
const medianB = median(results.map(([, b]) => b.requestsPerSecond))
console.log(`\nmedian req/s: no limit ${medianA.toFixed(0)}, maxConcurrency ${maxConcurrency} ${medianB.toFixed(0)}`)
console.log(`median ratio (B/A): ${median(ratios).toFixed(4)} (range ${Math.min(...ratios).toFixed(4)}..${Math.max(...ratios).toFixed(4)})`)
const cpuRatios = results.map(([a, b]) => b.cpuMicroseconds / a.cpuMicroseconds)
console.log(`median server CPU per request: A ${median(results.map(([a]) => a.cpuMicroseconds)).toFixed(1)} µs, ` +
  `B ${median(results.map(([, b]) => b.cpuMicroseconds)).toFixed(1)} µs, ratio B/A ${median(cpuRatios).toFixed(4)}`)
