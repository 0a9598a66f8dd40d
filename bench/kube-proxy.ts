// (7) The rolling update of test/e2e/kube-proxy.test.ts as a matrix: pods with the plugin's
// defaults and with a fixed readinessDelay, at endpoint-propagation lags of 3 and 8 s, behind
// kube-proxy's iptables rules. What counts is what the clients see through the ClusterIP, by
// kind, and how long each old pod took to exit. About 30-60 s per run, four runs; needs root.
import { nodeBinaries } from '../test/helpers/kube-node.js'
import { rollingUpdateThroughKubeProxy, summary } from '../test/helpers/kube-rolling-update.js'
import { failedRequests } from '../test/helpers/open-load.js'
import { round, servers, stopServers, type Figure } from './common.js'

const LAGS_MS = [3000, 8000]
/** What the e2e test allows between the SIGTERM and the exit, past the lag. */
const EXIT_SLACK_MS = 2500
const SETTINGS: Array<{ name: string, pluginOptions?: object }> = [
  { name: 'defaults' },
  { name: 'readinessDelay 10000', pluginOptions: { readinessDelay: 10_000 } }
]

export async function kubeProxyRollingUpdate (): Promise<Figure[]> {
  const binaries = nodeBinaries()
  if (typeof binaries === 'string') throw new Error(binaries)
  const figures: Figure[] = []
  for (const { name, pluginOptions } of SETTINGS) {
    for (const lagMs of LAGS_MS) {
      const what = `plugin ${name}; endpoint removed ${lagMs} ms after SIGTERM`
      console.log(`\n${what}`)
      try {
        const run = await rollingUpdateThroughKubeProxy(servers, binaries, { lagMs, pluginOptions })
        for (const line of summary(run)) console.log(`  ${line}`)
        const sent = run.loads.reduce((sum, { result }) => sum + result.sent, 0)
        const lost = run.loads.reduce((sum, { result }) => sum + failedRequests(result), 0)
        const kinds = new Map<string, number>()
        for (const { result } of run.loads) for (const { kind } of result.failures) kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
        figures.push({
          name: `Rolling update of 3 pods behind kube-proxy (iptables, network namespaces), 50 POST/s on new connections + 50 on keep-alive: ${what}`,
          result: `**${round(lost)} lost** of ${round(sent)}${kinds.size === 0 ? '' : ` (${[...kinds].map(([kind, n]) => `${kind}: ${n}`).join(', ')})`}; ` +
            `pods exited ${run.stops.map(({ exit }) => exit.signal ?? `code ${exit.code}`).join(', ')} after ` +
            `${run.stops.map(stop => stop.signalToExitMs).join(', ')} ms`,
          target: `0 lost, exit code 0 within lag + ${EXIT_SLACK_MS} ms`,
          met: lost === 0 && run.stops.every(({ exit, signalToExitMs }) => exit.code === 0 && signalToExitMs <= lagMs + EXIT_SLACK_MS)
        })
      } finally {
        await stopServers()
      }
    }
  }
  return figures
}
