// The Prometheus recipe of the README and the OpenTelemetry one of docs/observability.md, as written,
// run against a real server through a drain: what they record is what the clients saw.
import t from 'tap'
import Fastify from 'fastify'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { metrics, trace, type MeterProvider, type TracerProvider } from '@opentelemetry/api'
import { register } from 'prom-client'
import gracefulTermination from '../lib/index.js'
import { request } from './helpers/http.js'

/** Where the recipes are written for users. */
const DOCS = ['../README.md', '../docs/observability.md'].map(file => readFileSync(new URL(file, import.meta.url), 'utf8')).join('\n')
const PLUGIN = new URL('../lib/index.js', import.meta.url).href

/** The code block under `<!-- recipe: name -->`, importing this tree's plugin. */
function recipe (name: string): string {
  const block = new RegExp(`<!-- recipe: ${name} -->\\n\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(DOCS)
  if (block === null) throw new Error(`neither the README nor docs/observability.md has the recipe ${name}`)
  return block[1]!.replaceAll("'fastify-graceful-termination'", `'${PLUGIN}'`)
}

/** What the OpenTelemetry API hands the recipe, recorded: the app's SDK would export it. */
class RecordedSpan {
  readonly attributes: Record<string, unknown>
  readonly events: Array<{ name: string, attributes: Record<string, unknown> }> = []
  ended = false
  constructor (readonly name: string, attributes: Record<string, unknown> = {}) { this.attributes = { ...attributes } }
  addEvent (name: string, attributes: Record<string, unknown> = {}): this { this.events.push({ name, attributes }); return this }
  setAttribute (key: string, value: unknown): this { this.attributes[key] = value; return this }
  end (): void { this.ended = true }
}
const spans: RecordedSpan[] = []
const counted: Array<{ name: string, value: number, attributes: unknown }> = []

t.test('the recipes record the refusals and the counts of a drain, as the clients saw them', async t => {
  // The SDK starts before the app (node --import): its providers are in place when the recipe loads.
  metrics.setGlobalMeterProvider({
    getMeter: () => ({ createCounter: (name: string) => ({ add: (value: number, attributes: unknown) => counted.push({ name, value, attributes }) }) })
  } as unknown as MeterProvider)
  trace.setGlobalTracerProvider({
    getTracer: () => ({
      startSpan: (name: string, options: { attributes?: Record<string, unknown> } = {}) => {
        const span = new RecordedSpan(name, options.attributes)
        spans.push(span)
        return span
      }
    })
  } as unknown as TracerProvider)
  t.teardown(() => { metrics.disable(); trace.disable(); register.clear() })
  const dir = t.testdir()
  for (const name of ['prometheus', 'opentelemetry']) {
    const file = join(dir, `${name}.ts`)
    writeFileSync(file, recipe(name))
    await import(pathToFileURL(file).href)
  }

  const app = Fastify()
  await app.register(gracefulTermination, { handleSignals: false, maxConcurrency: 1, gracePeriod: 10_000, readinessDelay: 1000 })
  let release!: () => void
  const released = new Promise<void>(resolve => { release = resolve })
  let entered!: () => void
  const handlerEntered = new Promise<void>(resolve => { entered = resolve })
  app.get('/held', async () => { entered(); await released; return 'done' })
  let spanEndedBeforeOnClose: boolean | undefined
  app.addHook('onClose', async () => { spanEndedBeforeOnClose = spans[0]?.ended })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port

  const held = request(port, '/held')
  await handlerEntered
  const statuses = [(await request(port, '/held?full')).status]
  const outcome = app.graceful.shutdown('deploy')
  statuses.push((await request(port, '/held?draining')).status)
  release()
  statuses.push((await held).status)
  const { requests } = await outcome
  t.same(statuses, [503, 503, 200])
  t.same(requests, { inFlightAtStart: 1, arrived: 1, served: 1, refused: 1, abandoned: 0, cut: 0 })

  t.test('Prometheus', async t => {
    const refused = await register.getSingleMetric('graceful_refused_total')!.get()
    t.same(refused.values.map(({ labels, value }) => [labels.code, value]), [['FST_GRACEFUL_QUEUE_FULL', 1], ['FST_GRACEFUL_SHUTTING_DOWN', 1]])
    const drained = await register.getSingleMetric('graceful_drain_requests_total')!.get()
    t.same(Object.fromEntries(drained.values.map(({ labels, value }) => [labels.outcome, value])), { served: 1, refused: 1, abandoned: 0, cut: 0 })
  })

  t.test('OpenTelemetry', async t => {
    t.same(counted, [
      { name: 'graceful.refused', value: 1, attributes: { code: 'FST_GRACEFUL_QUEUE_FULL' } },
      { name: 'graceful.refused', value: 1, attributes: { code: 'FST_GRACEFUL_SHUTTING_DOWN' } }
    ])
    t.equal(spans.length, 1)
    const [span] = spans
    t.equal(span!.name, 'graceful shutdown')
    t.same(span!.events.map(event => event.name), ['started', 'stopped-accepting', 'drained'])
    t.same(span!.attributes, {
      'shutdown.reason': 'deploy',
      ...Object.fromEntries(Object.entries(requests).map(([outcome, count]) => [`requests.${outcome}`, count]))
    })
    t.equal(spanEndedBeforeOnClose, true, 'the span ended before the onClose hooks, where the SDK is flushed')
  })
})
