// (11) The plugin's own share of the server's CPU, which the side-by-side ratios of `overhead`
// cannot resolve below about 5 % on a shared machine: V8's sampling profiler (--cpu-prof) in the
// server under the same HTTP/1.1 load, with the plugin's defaults, with maxConcurrency, and as
// bare Fastify. The samples taken while the load runs are split into the plugin's own functions
// (lib/), the garbage collector and the rest (Node, Fastify, the route). A share of samples
// hardly moves with what else runs on the machine: a busy neighbour slows every function alike.
// What it cannot see is a cost the plugin causes in code not its own, except through the GC,
// whose share is measured beside bare Fastify's.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { describeSpread, FULL_YOUNG_GENERATION, loadAverage, pinningUnavailable, round, spread, startService, type Figure, type Service, type Spread } from './common.js'
import { autocannon } from './load.js'

const ROUNDS = Number(process.env.BENCH_PROFILE_ROUNDS ?? 6)
const WARMUP_SECONDS = 2
const LOAD_SECONDS = 5
const CONNECTIONS = 50
/** µs between samples: 20,000 samples in a load, so that a 1 % share is 200 of them. */
const SAMPLE_INTERVAL = 250
const SERVER_CPU = 0
const LOAD_CPU = 1
const LIB = new URL('../lib/', import.meta.url).href

interface Variant { label: string, service: Omit<Service, 'cpu' | 'nodeArgs'> }

const VARIANTS: Variant[] = [
  { label: 'bare Fastify', service: { graceful: false, env: { BARE_CLOSE_ON_SIGTERM: '1' } } },
  { label: 'plugin with defaults', service: { graceful: true } },
  { label: 'plugin with maxConcurrency 10000 (never queues)', service: { graceful: true, options: { maxConcurrency: 10_000 } } }
]

interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string } }>
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Where the server's busy time went while the load ran: shares of it, and µs per request. */
interface Split { pluginShare: number, gcShare: number, pluginMicrosPerRequest: number }

/** Monotonic µs: the clock of V8's profiles (CLOCK_MONOTONIC on Linux, as hrtime's). */
const now = (): number => Number(process.hrtime.bigint() / 1000n)

/** The main thread's profile (thread 0 in its name; the module loader's thread writes one too). */
function mainThreadProfile (dir: string): CpuProfile {
  const file = readdirSync(dir).find(name => /\.\d+\.0\.\d+\.cpuprofile$/.test(name))
  if (file === undefined) throw new Error(`no main-thread profile in ${dir}: ${readdirSync(dir).join(', ')}`)
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
}

type Kind = 'plugin' | 'gc' | 'idle' | 'other'

function split (profile: CpuProfile, from: number, to: number, answered: number): Split {
  const kind = new Map(profile.nodes.map(({ id, callFrame: { functionName, url } }): [number, Kind] => [id,
    url.startsWith(LIB) ? 'plugin' : functionName === '(garbage collector)' ? 'gc' : functionName === '(idle)' ? 'idle' : 'other']))
  const micros: Record<Kind, number> = { plugin: 0, gc: 0, idle: 0, other: 0 }
  // A sample's time is the interval that ended with it.
  let at = profile.startTime
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0
    at += delta
    if (at > from && at <= to) micros[kind.get(id)!] += delta
  })
  const busy = micros.plugin + micros.gc + micros.other
  return { pluginShare: micros.plugin / busy, gcShare: micros.gc / busy, pluginMicrosPerRequest: micros.plugin / answered }
}

async function oneRun ({ service }: Variant): Promise<Split> {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-profile-'))
  try {
    const app = await startService({
      ...service,
      cpu: SERVER_CPU,
      nodeArgs: [...FULL_YOUNG_GENERATION, '--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${SAMPLE_INTERVAL}`]
    })
    const load = { port: app.port, path: '/hello', cpu: LOAD_CPU, connections: CONNECTIONS }
    await autocannon({ ...load, seconds: WARMUP_SECONDS })
    const from = now()
    const { answered } = await autocannon({ ...load, seconds: LOAD_SECONDS })
    const to = now()
    // The profile is written as the process exits.
    app.kill('SIGTERM')
    const exit = await app.exited
    if (exit.code !== 0) throw new Error(`the server exited with ${exit.code ?? exit.signal}: its profile is lost`)
    return split(mainThreadProfile(dir), from, to, answered)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function profile (): Promise<Figure[]> {
  const unavailable = pinningUnavailable()
  if (unavailable !== undefined) throw new Error(unavailable)
  const runs: Split[][] = VARIANTS.map(() => [])
  const loads: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    for (let turn = 0; turn < VARIANTS.length; turn++) {
      const v = (i + turn) % VARIANTS.length
      const run = await oneRun(VARIANTS[v]!)
      runs[v]!.push(run)
      loads.push(loadAverage())
      console.log(`round ${i + 1}/${ROUNDS}, ${VARIANTS[v]!.label}: plugin ${(run.pluginShare * 100).toFixed(2)} % ` +
        `(${run.pluginMicrosPerRequest.toFixed(3)} µs per request), GC ${(run.gcShare * 100).toFixed(2)} %`)
    }
  }
  const machineLoad = spread(loads)
  const how = `HTTP/1.1, GET /hello, ${CONNECTIONS} connections (autocannon on CPU ${LOAD_CPU}, server on CPU ${SERVER_CPU}), ` +
    `${ROUNDS} runs of ${LOAD_SECONDS} s each, a fresh server each time in rotated order, a sample every ${SAMPLE_INTERVAL} µs, ` +
    `load average ${round(machineLoad.min, 1)}–${round(machineLoad.max, 1)}`
  const percent = (values: number[]): Spread => spread(values.map(value => value * 100))
  const bareGc = describeSpread(percent(runs[0]!.map(run => run.gcShare)), 2)
  return VARIANTS.slice(1).map(({ label }, index) => {
    const own = runs[index + 1]!
    const share = percent(own.map(run => run.pluginShare))
    return {
      name: `The plugin's own code, ${label}: share of the server's busy CPU time under load, by V8's sampling profiler; ${how}`,
      result: `**${describeSpread(share, 2)} %**, ` +
        `${round(spread(own.map(run => run.pluginMicrosPerRequest)).median, 3)} µs per request; ` +
        `garbage collection ${describeSpread(percent(own.map(run => run.gcShare)), 2)} % against bare Fastify's ${bareGc} %`,
      target: 'plugin ≤ 3 % of the CPU',
      met: share.median <= 3
    }
  })
}
