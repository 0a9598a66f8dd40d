// (9) What the plugin keeps per idle keep-alive connection, against bare Fastify in the same run:
// the server's heap after a full GC with 1,000 connections open, each idle after one response,
// then with 10,000; the growth divided by the 9,000 connections added, so that what a server
// holds once (compiled code, caches) does not count.
import net from 'node:net'
import { once } from 'node:events'
import { describeSpread, loadAverage, pluginAt, round, spread, startService, stopServers, usage, type Figure, type Service } from './common.js'

const ROUNDS = Number(process.env.BENCH_MEMORY_ROUNDS ?? 6)
const BEFORE = process.env.BENCH_BEFORE
const FIRST = 1_000
const TOTAL = 10_000
/** Connections opened at once: more would overflow the listen backlog (511) and wait on SYN retries. */
const BATCH = 250
const REQUEST = 'GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

interface Variant { label: string, service: Omit<Service, 'cpu' | 'nodeArgs'> }

/** Opens a connection, reads one keep-alive response, and leaves it idle. */
async function idleConnection (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setEncoding('utf8')
  socket.write(REQUEST)
  let received = ''
  while (!received.endsWith('"Hello Cerebrium!"}')) received += (await once(socket, 'data') as [string])[0]
  if (!received.startsWith('HTTP/1.1 200') || !/connection: keep-alive/i.test(received)) {
    throw new Error(`connection memory: unexpected response ${JSON.stringify(received.slice(0, 200))}`)
  }
  return socket
}

async function openIdle (port: number, count: number, sockets: net.Socket[]): Promise<void> {
  for (let opened = 0; opened < count; opened += BATCH) {
    sockets.push(...await Promise.all(Array.from({ length: Math.min(BATCH, count - opened) }, () => idleConnection(port))))
  }
}

/** Bytes of heap per idle keep-alive connection, from FIRST to TOTAL connections. */
async function bytesPerConnection ({ service }: Variant): Promise<number> {
  const app = await startService({ ...service, cpu: 0, nodeArgs: ['--expose-gc'] })
  const sockets: net.Socket[] = []
  try {
    await openIdle(app.port, FIRST, sockets)
    const first = await usage(app.port, { afterGc: true })
    await openIdle(app.port, TOTAL - FIRST, sockets)
    const total = await usage(app.port, { afterGc: true })
    return (total.heapUsed - first.heapUsed) / (TOTAL - FIRST)
  } finally {
    for (const socket of sockets) socket.destroy()
    await stopServers()
  }
}

export async function connectionMemory (): Promise<Figure[]> {
  const sides: Variant[] = [
    { label: 'bare Fastify', service: { graceful: false } },
    { label: 'plugin with defaults', service: { graceful: true } },
    ...BEFORE === undefined ? [] : [{ label: `plugin at ${BEFORE} with defaults`, service: { graceful: true, service: pluginAt(BEFORE) } }]
  ]
  const rounds: number[][] = []
  const loads: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const bytes: number[] = []
    for (const s of sides.map((_, s) => (s + i) % sides.length)) bytes[s] = await bytesPerConnection(sides[s]!)
    rounds.push(bytes)
    loads.push(loadAverage())
    console.log(`connection memory round ${i + 1}/${ROUNDS}: ` + sides.map(({ label }, s) => `${label} ${round(bytes[s]!)} B`).join(', '))
  }
  const load = spread(loads)
  const perConnection = (s: number): string => round(spread(rounds.map(r => r[s]!)).median)
  return sides.slice(1).map(({ label }, index) => {
    const s = index + 1
    const extra = spread(rounds.map(r => r[s]! - r[0]!))
    return {
      name: `Heap per idle keep-alive connection after one response, ${label} − bare Fastify: growth after a full GC from ` +
        `${round(FIRST)} to ${round(TOTAL)} connections, ${ROUNDS} rounds of fresh servers in rotated order, load average ${round(load.min, 1)}–${round(load.max, 1)}`,
      result: `**${extra.median >= 0 ? '+' : ''}${describeSpread(extra, 0)} B** per connection: ${perConnection(s)} vs ${perConnection(0)} B`,
      target: '≤ +200 B',
      met: extra.median <= 200
    }
  })
}
