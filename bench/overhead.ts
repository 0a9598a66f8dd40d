// (1) What the plugin costs a request, against bare Fastify in the same run: the server's CPU time
// per request answered and the main thread's GC pauses per request, on HTTP/1.1 (autocannon) and
// HTTP/2 (h2load), with the plugin's defaults and with a maxConcurrency far above the load (so it
// never queues). The route does nothing (GET /hello, a constant), so this is the worst case.
// The server runs on CPU 0 and the load generator on CPU 1: on two cores shared by both, req/s
// moves with every neighbour, while CPU time per request stays close to what the server does.
// Collections per 10,000 requests follow what a request allocates and what survives it, whatever
// else runs on the machine. A second bare Fastify measured like the others tells what the method
// can resolve.
import { describeSpread, FULL_YOUNG_GENERATION, loadAverage, pinningUnavailable, pluginAt, round, spread, startService, stopServers, usage, type Figure, type Service } from './common.js'
import { autocannon, h2load, h2loadMissing, type LoadGenerator } from './load.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20)
/** A commit whose plugin runs beside this tree's in the same rounds (BENCH_BEFORE=a8a40fe). */
const BEFORE = process.env.BENCH_BEFORE
const WARMUP_SECONDS = 2
/** Each server is measured for this long, SLICES times a round, the servers taking turns. */
const SECONDS_PER_SLICE = 1
const SLICES = 3
const SERVER_CPU = 0
const LOAD_CPU = 1

interface Protocol {
  name: string
  load: LoadGenerator
  connections: number
  streams?: number
  env: NodeJS.ProcessEnv
  missing? (): string | undefined
}

const HTTP1: Protocol = { name: 'HTTP/1.1', load: autocannon, connections: 50, env: {} }
const HTTP2: Protocol = { name: 'HTTP/2', load: h2load, connections: 32, streams: 8, env: { HTTP2: '1' }, missing: h2loadMissing }

interface Variant { label: string, service: Omit<Service, 'cpu' | 'env' | 'nodeArgs'> }

/** The first is the baseline every other is divided by, round by round. */
function variants (): Variant[] {
  return [
    { label: 'bare Fastify', service: { graceful: false } },
    { label: 'bare Fastify again (control)', service: { graceful: false } },
    { label: 'plugin with defaults', service: { graceful: true } },
    { label: 'plugin with maxConcurrency 10000 (never queues)', service: { graceful: true, options: { maxConcurrency: 10_000 } } },
    ...BEFORE === undefined ? [] : [{ label: `plugin at ${BEFORE} with defaults`, service: { graceful: true, service: pluginAt(BEFORE) } }]
  ]
}

/** What a server did under load, summed over a round's slices. */
interface Totals { answered: number, seconds: number, cpuMicros: number, gcMicros: number, minorGcs: number, majorGcs: number }

interface Measure {
  requestsPerSecond: number
  cpuMicrosPerRequest: number
  gcMicrosPerRequest: number
  /** Scavenges per 10,000 requests: what a request allocates. */
  minorGcsPer10k: number
  /** Mark-compacts per 10,000 requests: what survives requests. */
  majorGcsPer10k: number
}

async function load (protocol: Protocol, port: number, seconds: number): Promise<Totals> {
  const overHttp2 = protocol === HTTP2
  const before = await usage(port, { http2: overHttp2 })
  const { answered, seconds: elapsed } = await protocol.load({
    port, path: '/hello', seconds, cpu: LOAD_CPU, connections: protocol.connections, streams: protocol.streams
  })
  const after = await usage(port, { http2: overHttp2 })
  return {
    answered,
    seconds: elapsed,
    cpuMicros: after.cpuMicros - before.cpuMicros,
    gcMicros: after.gcMicros - before.gcMicros,
    minorGcs: after.minorGcs - before.minorGcs,
    majorGcs: after.majorGcs - before.majorGcs
  }
}

function measureOf (totals: Totals[]): Measure {
  const sum = (of: keyof Totals): number => totals.reduce((total, slice) => total + slice[of], 0)
  const answered = sum('answered')
  return {
    requestsPerSecond: answered / sum('seconds'),
    cpuMicrosPerRequest: sum('cpuMicros') / answered,
    gcMicrosPerRequest: sum('gcMicros') / answered,
    minorGcsPer10k: sum('minorGcs') / answered * 10_000,
    majorGcsPer10k: sum('majorGcs') / answered * 10_000
  }
}

async function compare (protocol: Protocol): Promise<Figure[]> {
  const missing = protocol.missing?.()
  if (missing !== undefined) {
    console.log(`${protocol.name}: not measured: ${missing}`)
    return [{ name: `${protocol.name}: not measured`, result: `**${missing}**`, target: 'CPU ≤ 1.03, GC ≤ 1.10', met: false }]
  }
  const sides = variants()
  const rounds: Measure[][] = []
  const loads: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    // Every round starts every server afresh: one process can be luckier than another for its
    // whole life (JIT, heap layout). The servers take turns slice by slice, so that a change in
    // what else runs on the machine falls on all of them alike, and the order rotates, so that
    // going first, or right after another, does too.
    const servers = await Promise.all(sides.map(({ service }) => startService({ ...service, cpu: SERVER_CPU, nodeArgs: FULL_YOUNG_GENERATION, env: { ...protocol.env, MEASURE_GC: '1' } })))
    const order = (shift: number): number[] => sides.map((_, s) => (s + shift) % sides.length)
    for (const s of order(i)) await load(protocol, servers[s]!.port, WARMUP_SECONDS)
    const slices: Totals[][] = sides.map(() => [])
    for (let slice = 0; slice < SLICES; slice++) {
      for (const s of order(i + slice)) slices[s]!.push(await load(protocol, servers[s]!.port, SECONDS_PER_SLICE))
    }
    await stopServers()
    const measures = slices.map(measureOf)
    rounds.push(measures)
    loads.push(loadAverage())
    console.log(`${protocol.name} round ${i + 1}/${ROUNDS} (load ${round(loadAverage(), 2)}): ` + sides.map(({ label }, s) =>
      `${label} ${round(measures[s]!.requestsPerSecond)} req/s, ${measures[s]!.cpuMicrosPerRequest.toFixed(2)} µs CPU, ${measures[s]!.gcMicrosPerRequest.toFixed(2)} µs GC, ` +
      `${measures[s]!.minorGcsPer10k.toFixed(2)} minor and ${measures[s]!.majorGcsPer10k.toFixed(3)} major GCs per 10k`).join('; '))
  }

  const machineLoad = spread(loads)
  const how = `${protocol.name}, GET /hello, ${protocol.connections} connections${protocol.streams === undefined ? '' : ` × ${protocol.streams} streams`} ` +
    `(${protocol.load === autocannon ? 'autocannon' : 'h2load'} on CPU ${LOAD_CPU}, server on CPU ${SERVER_CPU}), ` +
    `${ROUNDS} rounds of fresh servers, ${SLICES} slices of ${SECONDS_PER_SLICE} s each in turn, load average ${round(machineLoad.min, 1)}–${round(machineLoad.max, 1)}`
  const micros = (s: number, of: keyof Measure, digits = 2): string => round(spread(rounds.map(r => r[s]![of])).median, digits)
  const ratio = (s: number, of: keyof Measure) => spread(rounds.map(r => r[s]![of] / r[0]![of]))
  return sides.slice(1).map(({ label }, index) => {
    const s = index + 1
    const cpu = ratio(s, 'cpuMicrosPerRequest')
    const gc = ratio(s, 'gcMicrosPerRequest')
    const control = label.includes('control')
    return {
      name: `${label} ÷ bare Fastify: ${how}`,
      result: `CPU per request **${describeSpread(cpu, 3)}**, ${micros(s, 'cpuMicrosPerRequest')} vs ${micros(0, 'cpuMicrosPerRequest')} µs; ` +
        `GC per request **${describeSpread(gc, 2)}**, ${micros(s, 'gcMicrosPerRequest')} vs ${micros(0, 'gcMicrosPerRequest')} µs; ` +
        `collections per 10,000 requests: minor ${micros(s, 'minorGcsPer10k')} vs ${micros(0, 'minorGcsPer10k')}, ` +
        `major ${micros(s, 'majorGcsPer10k', 3)} vs ${micros(0, 'majorGcsPer10k', 3)}; ` +
        `req/s ${describeSpread(ratio(s, 'requestsPerSecond'), 3)}, ${micros(s, 'requestsPerSecond', 0)} vs ${micros(0, 'requestsPerSecond', 0)}`,
      target: control ? '— (the noise: what the method resolves)' : 'CPU ≤ 1.03, GC ≤ 1.10',
      ...control ? {} : { met: cpu.median <= 1.03 && gc.median <= 1.10 }
    }
  })
}

export async function overhead (): Promise<Figure[]> {
  const unavailable = pinningUnavailable()
  if (unavailable !== undefined) throw new Error(unavailable)
  return [...await compare(HTTP1), ...await compare(HTTP2)]
}
