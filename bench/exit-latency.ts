// (2) How long the process outlives its work: from the last in-flight response (its last byte at
// the client) to the process's exit, after SIGTERM, with the plugin's defaults; then the same
// with sockets open that carry no request, which Node itself would wait for.
import net from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from '../test/helpers/http.js'
import { median, round, startService, type Figure } from './common.js'

const RUNS = 10
const IN_FLIGHT = 20
const PREDICT_MS = 200
/** Of each kind: silent, half-sent headers, idle after one keep-alive response. */
const LEFT_OPEN = 100

/** Sockets a client left open with no request on them; the server must close them all. */
async function openIdleSockets (port: number): Promise<net.Socket[]> {
  const open = async (send?: string, awaitResponse = false): Promise<net.Socket> => {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await once(socket, 'connect')
    if (send !== undefined) socket.write(send)
    if (awaitResponse) await once(socket, 'data')
    return socket
  }
  return Promise.all([
    ...Array.from({ length: LEFT_OPEN }, () => open()),
    ...Array.from({ length: LEFT_OPEN }, () => open('POST /hello HTTP/1.1\r\nHost: x\r\n')),
    ...Array.from({ length: LEFT_OPEN }, () => open('POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', true))
  ])
}

async function oneRun (leaveSocketsOpen: boolean): Promise<number> {
  const app = await startService({ graceful: true })
  const idleSockets = leaveSocketsOpen ? await openIdleSockets(app.port) : []
  const closedByServer = Promise.all(idleSockets.map(socket => once(socket, 'close')))
  const body = JSON.stringify({ input: 'exit latency', ms: PREDICT_MS })
  const responses = Array.from({ length: IN_FLIGHT }, () => request(app.port, '/predict', {
    method: 'POST', body, headers: { 'content-type': 'application/json' }
  }))
  // SIGTERM once the server counts every request as in flight (readiness reports the count).
  for (let attempt = 0; (await request(app.port, '/ready')).json().active_requests < IN_FLIGHT; attempt++) {
    if (attempt === 100) throw new Error(`exit latency: ${IN_FLIGHT} requests never were in flight together`)
    await sleep(5)
  }
  app.kill('SIGTERM')

  const answered = await Promise.all(responses)
  const exit = await app.exited
  await closedByServer
  if (exit.code !== 0 || answered.some(response => response.status !== 200)) {
    throw new Error(`exit latency: exit code ${exit.code}, statuses ${answered.map(response => response.status).join(' ')}`)
  }
  return exit.at - Math.max(...answered.map(response => response.endedAt))
}

async function figure (leaveSocketsOpen: boolean): Promise<Figure> {
  const latencies: number[] = []
  for (let i = 0; i < RUNS; i++) {
    latencies.push(await oneRun(leaveSocketsOpen))
  }
  console.log(`exit latency${leaveSocketsOpen ? ', sockets left open' : ''} (ms): ${latencies.map(ms => ms.toFixed(1)).join(', ')}`)
  const sockets = leaveSocketsOpen ? `, and ${LEFT_OPEN} silent, ${LEFT_OPEN} half-sent and ${LEFT_OPEN} idle keep-alive sockets open` : ''
  return {
    name: `Last in-flight response to process exit, after SIGTERM: ${IN_FLIGHT} requests of ${PREDICT_MS} ms in flight${sockets}, ` +
      `${RUNS} runs, each a new process`,
    result: `**${round(median(latencies), 1)} ms** (median; max ${round(Math.max(...latencies), 1)} ms; exit code 0 every time)`,
    target: '≤ 50 ms',
    met: Math.max(...latencies) <= 50
  }
}

export async function exitLatency (): Promise<Figure[]> {
  return [await figure(false), await figure(true)]
}
