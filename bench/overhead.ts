// Throughput costs, each as a ratio of two servers measured side by side in one run:
// (1) the plugin with its defaults against bare Fastify; (5) the plugin with a maxConcurrency far
// above the load, so it never queues, against the plugin without a limit. Same fixture, same
// route (POST /hello), alternated rounds. The server's CPU time per request is measured in the
// same rounds: on a machine with two cores shared by the load generator, both servers and
// anything else running, req/s moves with every neighbour, while CPU time per request stays
// close to what the server itself does.
import autocannon from 'autocannon'
import { assertClean, median, round, startService, stopServers, usage, type Figure, type Service } from './common.js'

// 24: with 12, single rounds ranged 0.6–1.5 on this host and the median of the same code moved
// from 0.86 to 1.03 between runs.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 24)
const SECONDS_PER_ROUND = 3
const WARMUP_SECONDS = 2
const CONNECTIONS = 50

interface Measure { requestsPerSecond: number, cpuMicrosPerRequest: number }

async function measure (port: number, duration: number): Promise<Measure> {
  const before = await usage(port)
  const result = await autocannon({ url: `http://127.0.0.1:${port}/hello`, method: 'POST', connections: CONNECTIONS, duration })
  const after = await usage(port)
  assertClean(result, 'overhead')
  return {
    requestsPerSecond: result.requests.total / result.duration,
    cpuMicrosPerRequest: (after.cpuMicros - before.cpuMicros) / result.requests.total
  }
}

interface Variant { label: string, service: Service }

/** candidate ÷ baseline, as a figure: the median of the rounds' ratios, and the CPU per request. */
async function compare (what: string, baseline: Variant, candidate: Variant): Promise<Figure> {
  const sides = [baseline, candidate] as const
  // Every round starts both servers afresh: one process can be luckier than another for its
  // whole life (JIT, heap layout), and with long-lived servers that luck, not the code, made a
  // steady gap of up to 20 % either way from one run to the next. Within a round the order is
  // flipped every time, so a drift of the machine falls on both sides alike.
  const rounds: Array<[Measure, Measure]> = []
  for (let i = 0; i < ROUNDS; i++) {
    const servers = await Promise.all(sides.map(side => startService(side.service)))
    const order = i % 2 === 0 ? [0, 1] : [1, 0]
    for (const side of order) await measure(servers[side]!.port, WARMUP_SECONDS)
    const measures: Measure[] = []
    for (const side of order) measures[side] = await measure(servers[side]!.port, SECONDS_PER_ROUND)
    await stopServers()
    const pair = measures as [Measure, Measure]
    rounds.push(pair)
    console.log(`${what} round ${i + 1}/${ROUNDS}: ` + sides.map((side, s) =>
      `${side.label} ${round(pair[s]!.requestsPerSecond)} req/s ${pair[s]!.cpuMicrosPerRequest.toFixed(2)} µs CPU/req`).join(', '))
  }

  const ratios = rounds.map(([b, c]) => c.requestsPerSecond / b.requestsPerSecond)
  const ratio = median(ratios)
  const rps = (s: 0 | 1): string => round(median(rounds.map(r => r[s].requestsPerSecond)))
  const cpu = (s: 0 | 1): string => round(median(rounds.map(r => r[s].cpuMicrosPerRequest)), 1)
  return {
    name: `Throughput, ${candidate.label} ÷ ${baseline.label}: POST /hello, ${CONNECTIONS} connections, ` +
      `${ROUNDS} rounds of fresh servers, ${SECONDS_PER_ROUND} s on each in alternated order`,
    result: `**${round(ratio, 3)}** (median of the rounds' ratios; rounds ranged ${round(Math.min(...ratios), 2)}–` +
      `${round(Math.max(...ratios), 2)}; ${rps(1)} vs ${rps(0)} req/s). Server CPU time per request: ${cpu(1)} vs ` +
      `${cpu(0)} µs, ratio ${round(median(rounds.map(([b, c]) => c.cpuMicrosPerRequest / b.cpuMicrosPerRequest)), 3)}`,
    target: '≥ 0.97',
    met: ratio >= 0.97
  }
}

export const overhead = async (): Promise<Figure[]> => [await compare('overhead',
  { label: 'bare Fastify', service: { graceful: false } },
  { label: 'plugin with defaults', service: { graceful: true } })]

export const limitOverhead = async (): Promise<Figure[]> => [await compare('limit',
  { label: 'plugin without a limit', service: { graceful: true } },
  { label: 'plugin with maxConcurrency 10000 (never queues)', service: { graceful: true, options: { maxConcurrency: 10_000 } } })]
