// (2) How long the process outlives its work: from the last in-flight response (its last byte at
// the client) to the process's exit, after SIGTERM, with the plugin's defaults.
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from '../test/helpers/http.js'
import { median, round, startService, type Figure } from './common.js'

const RUNS = 10
const IN_FLIGHT = 20
const PREDICT_MS = 200

async function oneRun (): Promise<number> {
  const app = await startService({ graceful: true })
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
  if (exit.code !== 0 || answered.some(response => response.status !== 200)) {
    throw new Error(`exit latency: exit code ${exit.code}, statuses ${answered.map(response => response.status).join(' ')}`)
  }
  return exit.at - Math.max(...answered.map(response => response.endedAt))
}

export async function exitLatency (): Promise<Figure[]> {
  const latencies: number[] = []
  for (let i = 0; i < RUNS; i++) {
    latencies.push(await oneRun())
  }
  console.log(`exit latency (ms): ${latencies.map(ms => ms.toFixed(1)).join(', ')}`)
  const typical = median(latencies)
  return [{
    name: `Last in-flight response to process exit, after SIGTERM: ${IN_FLIGHT} requests of ${PREDICT_MS} ms in flight, ` +
      `${RUNS} runs, each a new process`,
    result: `**${round(typical, 1)} ms** (median; max ${round(Math.max(...latencies), 1)} ms; exit code 0 every time)`,
    target: '≤ 50 ms',
    met: Math.max(...latencies) <= 50
  }]
}
