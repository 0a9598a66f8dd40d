// (4) Does the plugin keep anything per request? The server's memory after a forced full GC,
// once after 10,000 requests and again after 1,000,000, with the plugin's defaults.
import autocannon from 'autocannon'
import { assertClean, round, startService, usage, type Figure } from './common.js'

const WARMUP_REQUESTS = 10_000
const TOTAL_REQUESTS = 1_000_000
const CONNECTIONS = 50
/** A leak of even one small object per request (a Map entry, a listener) is ~100 bytes. */
const GROWTH_LIMIT_BYTES_PER_REQUEST = 1

const mb = (bytes: number): string => `${round(bytes / 2 ** 20, 1)} MB`

export async function memory (): Promise<Figure[]> {
  const app = await startService({ graceful: true, nodeArgs: ['--expose-gc'] })
  async function load (amount: number): Promise<void> {
    const result = await autocannon({
      url: `http://127.0.0.1:${app.port}`,
      connections: CONNECTIONS,
      amount,
      requests: [
        { method: 'POST', path: '/hello' },
        { method: 'POST', path: '/predict', headers: { 'content-type': 'application/json' }, body: '{"input":"memory","ms":1}' }
      ]
    })
    assertClean(result, 'memory')
  }

  const startedAt = performance.now()
  await load(WARMUP_REQUESTS)
  const early = await usage(app.port, { afterGc: true })
  await load(TOTAL_REQUESTS - WARMUP_REQUESTS)
  const late = await usage(app.port, { afterGc: true })
  const growth = late.heapUsed - early.heapUsed
  const perRequest = growth / (TOTAL_REQUESTS - WARMUP_REQUESTS)
  console.log(`memory: after ${round(WARMUP_REQUESTS)} requests ${JSON.stringify(early)}, after ${round(TOTAL_REQUESTS)} ` +
    `${JSON.stringify(late)} (${((performance.now() - startedAt) / 1000).toFixed(0)} s)`)

  return [{
    name: `Server memory after a full GC, after ${round(WARMUP_REQUESTS)} and after ${round(TOTAL_REQUESTS)} requests ` +
      '(POST /hello and POST /predict alternated)',
    result: `heap used **${mb(early.heapUsed)} → ${mb(late.heapUsed)}** (${growth >= 0 ? '+' : ''}${round(growth / 1024)} KB, ` +
      `${round(perRequest, 3)} bytes per request); RSS ${mb(early.rss)} → ${mb(late.rss)}`,
    target: `heap growth < ${GROWTH_LIMIT_BYTES_PER_REQUEST} byte per request`,
    met: perRequest < GROWTH_LIMIT_BYTES_PER_REQUEST
  }]
}
