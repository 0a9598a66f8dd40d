// Kubernetes' Service path, built as kube-proxy builds it, with the kernel's own networking: the
// ClusterIP DNATed to one pod or another by iptables rules in the node's namespace, each pod in a
// namespace of its own, a rolling update under an open-loop load. The pods run the plugin with
// its defaults, in a pod's environment, and the endpoint of a terminating pod is removed seconds
// after its SIGTERM, as on a real cluster: until then kube-proxy still sends it new connections,
// and a pod that refuses them loses requests. Not one may be lost.
import t from 'tap'
import { nodeBinaries, type Binaries } from '../helpers/kube-node.js'
import { rollingUpdateThroughKubeProxy, summary, LOADS, REPLICAS } from '../helpers/kube-rolling-update.js'
import { failedRequests } from '../helpers/open-load.js'

/**
 * The pods' plugin options. undefined: PLUGIN_OPTIONS unset, the defaults the claim is about; set
 * it (e.g. { readinessDelay: 10_000 }) to compare other settings on the same scenario.
 */
const PLUGIN_OPTIONS: object | undefined = undefined
/** Endpoint-propagation lags: from the SIGTERM until kube-proxy no longer routes to the pod. */
const LAGS_MS = [3000, 8000]
/** After its endpoint is removed, a pod stops accepting once idle for about a second, then drains 200-300 ms requests. */
const EXIT_SLACK_MS = 2500

const binaries = nodeBinaries()
const missing = typeof binaries === 'string' && binaries
if (missing && process.env.CI === 'true') t.fail(`${missing}: CI must run the kube-proxy test`)

for (const lagMs of LAGS_MS) {
  t.test(`rolling update of ${REPLICAS} pods behind kube-proxy, endpoint removed ${lagMs} ms after SIGTERM: no request lost`, { skip: missing }, async t => {
    const run = await rollingUpdateThroughKubeProxy(t, binaries as Binaries, { lagMs, pluginOptions: PLUGIN_OPTIONS })
    for (const line of summary(run)) t.comment(line)

    // Each load runs through the three lags at least.
    const minimum = (ratePerSecond: number): number => Math.floor(0.9 * ratePerSecond * REPLICAS * lagMs / 1000)
    for (const [i, { name, result }] of run.loads.entries()) {
      const { ratePerSecond } = LOADS[i]!
      t.ok(result.sent >= minimum(ratePerSecond), `${name}: the load ran (${result.sent} requests, at least ${minimum(ratePerSecond)})`)
      t.ok(result.sendRate >= 0.9 * ratePerSecond, `${name}: the load kept its rate (${result.sendRate.toFixed(1)} requests sent per second)`)
    }
    const lost = run.loads.map(({ name, result }) => `${name}: ${failedRequests(result)} ${JSON.stringify({ ...result.errors, ...nonSuccess(result.statusCodes) })}`)
    t.equal(run.loads.reduce((sum, { result }) => sum + failedRequests(result), 0), 0,
      `no request lost: every one answered 2xx, none refused, reset or timed out (${lost.join('; ')})`)

    t.equal(run.stops.length, REPLICAS, 'every old pod was stopped')
    for (const { pod, exit, signalToExitMs, servedAfterSignal } of run.stops) {
      t.equal(exit.code, 0, `${pod} exited with code 0 (${exit.signal ?? `code ${exit.code}`})`)
      t.ok(signalToExitMs <= lagMs + EXIT_SLACK_MS, `${pod} exited within ${lagMs} + ${EXIT_SLACK_MS} ms of its SIGTERM (${signalToExitMs} ms)`)
      t.ok(servedAfterSignal > 0, `${pod} received requests after its SIGTERM, while kube-proxy still routed to it (${servedAfterSignal})`)
    }
    for (const [i, { served }] of run.replacements.entries()) {
      t.ok(served > 0, `replacement ${i + 1} received requests (${served})`)
    }
  })
}

function nonSuccess (statusCodes: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(statusCodes).filter(([code]) => !code.startsWith('2')))
}
