// (1) What the plugin costs in throughput: req/s of POST /hello with the plugin (defaults)
// against bare Fastify, the same route in the same fixture, in alternated rounds of one run.
// The server's CPU time per request is measured in the same rounds: on a machine with two cores
// shared by the load generator, both servers and anything else running, req/s moves with every
// neighbour, while CPU time per request stays close to what the server itself does.
import autocannon from 'autocannon'
import { assertClean, median, round, startService, usage, type Figure } from './common.js'

const ROUNDS = 20
const SECONDS_PER_ROUND = 2
const WARMUP_SECONDS = 3
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

export async function overhead (): Promise<Figure[]> {
  const servers = {
    bare: await startService({ graceful: false }),
    plugin: await startService({ graceful: true })
  }
  await measure(servers.bare.port, WARMUP_SECONDS)
  await measure(servers.plugin.port, WARMUP_SECONDS)

  // Each round measures both, the order flipped every round, so a drift of the machine falls on
  // both sides alike; the figure is the median of the rounds' ratios.
  const rounds: Array<Record<'bare' | 'plugin', Measure>> = []
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? ['bare', 'plugin'] as const : ['plugin', 'bare'] as const
    const measures: Partial<Record<'bare' | 'plugin', Measure>> = {}
    for (const side of order) measures[side] = await measure(servers[side].port, SECONDS_PER_ROUND)
    const { bare, plugin } = measures as Record<'bare' | 'plugin', Measure>
    rounds.push({ bare, plugin })
    console.log(`overhead round ${i + 1}/${ROUNDS}: bare ${round(bare.requestsPerSecond)} req/s ${bare.cpuMicrosPerRequest.toFixed(2)} µs CPU/req, ` +
      `plugin ${round(plugin.requestsPerSecond)} req/s ${plugin.cpuMicrosPerRequest.toFixed(2)} µs CPU/req`)
  }

  const throughputRatios = rounds.map(({ bare, plugin }) => plugin.requestsPerSecond / bare.requestsPerSecond)
  const cpuRatios = rounds.map(({ bare, plugin }) => plugin.cpuMicrosPerRequest / bare.cpuMicrosPerRequest)
  const ratio = median(throughputRatios)
  const cpu = (side: 'bare' | 'plugin'): string => round(median(rounds.map(r => r[side].cpuMicrosPerRequest)), 1)
  return [{
    name: `Throughput, plugin with defaults ÷ bare Fastify: POST /hello, ${CONNECTIONS} connections, ` +
      `${ROUNDS} alternated rounds of ${SECONDS_PER_ROUND} s on each`,
    result: `**${round(ratio, 3)}** (median of the rounds' ratios; rounds ranged ${round(Math.min(...throughputRatios), 2)}–` +
      `${round(Math.max(...throughputRatios), 2)}; ${round(median(rounds.map(r => r.plugin.requestsPerSecond)))} vs ` +
      `${round(median(rounds.map(r => r.bare.requestsPerSecond)))} req/s). Server CPU time per request: ${cpu('plugin')} vs ` +
      `${cpu('bare')} µs, ratio ${round(median(cpuRatios), 3)}`,
    target: '≥ 0.97',
    met: ratio >= 0.97
  }]
}
