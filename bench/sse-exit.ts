// (10) How long the exit takes once 10,000 Server-Sent Events streams end: each stream has had
// its first event when SIGTERM comes, and ends with a last event as the shutdown starts (the
// plugin's `signal`; bare Fastify's own SIGTERM handler, which then calls close()). Measured from
// the last of those events at its client to the process's exit, and from SIGTERM to the exit,
// with each client closing its side once the server has; against bare Fastify in the same run,
// fresh servers in alternated order.
import net from 'node:net'
import { once } from 'node:events'
import { describeSpread, loadAverage, pinnedTo, pinningUnavailable, pluginAt, round, spread, startService, stopServers, type Figure, type Service } from './common.js'

const ROUNDS = Number(process.env.BENCH_SSE_ROUNDS ?? 6)
const STREAMS = Number(process.env.BENCH_STREAMS ?? 10_000)
const BEFORE = process.env.BENCH_BEFORE
/** Connections opened at once: more would overflow the listen backlog (511) and wait on SYN retries. */
const BATCH = 250
const REQUEST = 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

interface Variant { label: string, service: Omit<Service, 'cpu'> }

interface Ending {
  /** performance.now() when the stream's last event came; undefined if it never did. */
  lastEventAt: number | undefined
  fin: boolean
  reset: boolean
}

interface Stream { ending: Promise<Ending> }

/** Opens an event stream and resolves once its first event has come. */
async function openStream (port: number): Promise<Stream> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setEncoding('utf8')
  const ending: Ending = { lastEventAt: undefined, fin: false, reset: false }
  let received = ''
  socket.on('data', (chunk: string) => {
    received += chunk
    if (ending.lastEventAt === undefined && received.includes('data: bye')) ending.lastEventAt = performance.now()
  })
  socket.on('end', () => { ending.fin = true })
  socket.on('error', () => { ending.reset = true })
  const closed = once(socket, 'close').then(() => ending)
  socket.write(REQUEST)
  while (!received.includes('data: started')) await once(socket, 'data')
  return { ending: closed }
}

interface Run { signalToExitMs: number, lastEventToExitMs: number, exitCode: number | null, endings: Ending[] }

async function oneRun ({ service }: Variant): Promise<Run> {
  const app = await startService({ ...service, cpu: 0 })
  try {
    const streams: Stream[] = []
    for (let opened = 0; opened < STREAMS; opened += BATCH) {
      streams.push(...await Promise.all(Array.from({ length: Math.min(BATCH, STREAMS - opened) }, () => openStream(app.port))))
    }
    const signalledAt = performance.now()
    app.kill('SIGTERM')
    const exit = await app.exited
    const endings = await Promise.all(streams.map(stream => stream.ending))
    const lastEventAt = endings.reduce((last, ending) => Math.max(last, ending.lastEventAt ?? -Infinity), -Infinity)
    return { signalToExitMs: exit.at - signalledAt, lastEventToExitMs: exit.at - lastEventAt, exitCode: exit.code, endings }
  } finally {
    await stopServers()
  }
}

export async function sseExit (): Promise<Figure[]> {
  const unavailable = pinningUnavailable()
  if (unavailable !== undefined) throw new Error(unavailable)
  const sides: Variant[] = [
    { label: 'bare Fastify (SIGTERM: end the streams, then close())', service: { graceful: false, env: { BARE_CLOSE_ON_SIGTERM: '1' } } },
    { label: 'plugin with defaults', service: { graceful: true } },
    ...BEFORE === undefined ? [] : [{ label: `plugin at ${BEFORE} with defaults`, service: { graceful: true, service: pluginAt(BEFORE) } }]
  ]
  const runs: Run[][] = []
  const loads: number[] = []
  // The clients run here, on the load generator's CPU.
  await pinnedTo(1, async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const results: Run[] = []
      for (const s of sides.map((_, s) => (s + i) % sides.length)) results[s] = await oneRun(sides[s]!)
      runs.push(results)
      loads.push(loadAverage())
      console.log(`SSE exit round ${i + 1}/${ROUNDS}: ` + sides.map(({ label }, s) => {
        const { signalToExitMs, lastEventToExitMs, exitCode, endings } = results[s]!
        return `${label} ${signalToExitMs.toFixed(0)} ms from SIGTERM, ${lastEventToExitMs.toFixed(0)} ms from the last event, exit code ${exitCode}, ` +
          `${endings.filter(e => e.lastEventAt !== undefined).length} last events, ` +
          `${endings.filter(e => e.fin && !e.reset).length} FIN, ${endings.filter(e => e.reset).length} reset`
      }).join('; '))
    }
  })
  const load = spread(loads)
  return sides.map(({ label }, s) => {
    const mine = runs.map(r => r[s]!)
    const afterLastEvent = spread(mine.map(run => run.lastEventToExitMs))
    const afterSignal = spread(mine.map(run => run.signalToExitMs))
    const clean = mine.every(run => run.exitCode === 0 && run.endings.every(e => e.lastEventAt !== undefined && e.fin && !e.reset))
    const resets = mine.reduce((sum, run) => sum + run.endings.filter(e => e.reset).length, 0)
    const lastEvents = mine.reduce((sum, run) => sum + run.endings.filter(e => e.lastEventAt !== undefined).length, 0)
    return {
      name: `Exit after ${round(STREAMS)} SSE streams end, ${label}: ${ROUNDS} runs, each a new process on CPU 0, ` +
        `clients on CPU 1, alternated with the other servers, load average ${round(load.min, 1)}–${round(load.max, 1)}`,
      result: `last event to exit **${describeSpread(afterLastEvent, 0)} ms**; SIGTERM to exit ${describeSpread(afterSignal, 0)} ms; ` +
        `exit codes ${[...new Set(mine.map(run => run.exitCode))].join(', ')}, ` +
        `${round(lastEvents)} of ${round(STREAMS * ROUNDS)} streams got their last event, ${resets} connections reset`,
      target: s === 0 ? '— (comparison)' : 'last event to exit ≤ 300 ms, every stream ended and closed with a FIN',
      ...s === 0 ? {} : { met: afterLastEvent.median <= 300 && clean }
    }
  })
}
