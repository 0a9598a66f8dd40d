// A Deployment's rolling update behind a Service, on a node built by kube-node.ts: pods in their
// own network namespaces, kube-proxy's nat rules, the kubelet's probes and the Service's clients
// in the node's namespace, an open-loop load through the ClusterIP the whole time.
import { setTimeout as sleep } from 'node:timers/promises'
import { fixtureArgs, hasMessage, requestFor, spawnProcess, startCommand, type AppProcess, type Exit, type LogLine, type Teardown } from './app-process.js'
import { POD_PORT, SERVICE, startKubeNode, type Binaries, type PodNetwork } from './kube-node.js'
import { failureLines, type LoadOptions, type LoadResult } from './open-load.js'

export const REPLICAS = 3
/** The issue's load: 50 requests/s on new connections and 50 on keep-alive ones, through the ClusterIP. */
export const LOADS = [
  { name: 'new connections', keepAlive: false, ratePerSecond: 50 },
  { name: 'keep-alive', keepAlive: true, ratePerSecond: 50 }
] as const
const WORK_MS = [200, 300] as const
const TIMEOUT_MS = 15_000
/** POST /predict requests every first pod serves before the update starts: the load reaches them all. */
const WARM_UP_REQUESTS = 20
/** What Kubernetes puts in every pod's environment, and what the plugin recognises it by. */
const POD_ENV = { KUBERNETES_SERVICE_HOST: '198.19.0.1', KUBERNETES_SERVICE_PORT: '443' }

export interface KubeScenario {
  /** How long after a pod's SIGTERM kube-proxy removes its endpoint: the endpoint-propagation lag. */
  lagMs: number
  /** The plugin's options in every pod; undefined: PLUGIN_OPTIONS unset, the plugin's defaults. */
  pluginOptions?: object
}

export interface PodStop {
  pod: string
  exit: Exit
  /** When the SIGTERM was sent, in ms since the load started. */
  signalledAtMs: number
  signalToExitMs: number
  /** POST /predict requests the pod received after its SIGTERM. */
  servedAfterSignal: number
}

export interface KubeRollingUpdate {
  lagMs: number
  loads: Array<{ name: string, result: LoadResult }>
  stops: PodStop[]
  replacements: Array<{
    /** From the creation of its namespace until its readiness probe passed. */
    startupMs: number
    /** POST /predict requests it received. */
    served: number
  }>
}

interface Pod extends PodNetwork {
  app: AppProcess
  /** From the creation of its namespace until its readiness probe passed. */
  startupMs: number
}

/**
 * Three pods behind the Service under load; then, for each in turn, as a Deployment with maxSurge
 * 1 does: start a replacement, add its endpoint once its readiness probe passes, SIGTERM the old
 * pod, remove its endpoint `lagMs` later, await its exit.
 */
export async function rollingUpdateThroughKubeProxy (t: Teardown, binaries: Binaries, { lagMs, pluginOptions }: KubeScenario): Promise<KubeRollingUpdate> {
  const node = await startKubeNode(t, binaries)
  const inNode = (fixture: string): [string, string[]] => node.inNamespace(node.namespace, process.execPath, fixtureArgs(fixture))
  const kubelet = spawnProcess(t, ...inNode('kubelet-prober.ts'), { stdin: 'pipe', env: { ...process.env, POD_PORT: String(POD_PORT) } })
  const podEnv = {
    ...process.env,
    ...POD_ENV,
    GRACEFUL: '1',
    HOST: '0.0.0.0',
    PORT: String(POD_PORT),
    LOG_REQUESTS: '1',
    PLUGIN_OPTIONS: pluginOptions === undefined ? undefined : JSON.stringify(pluginOptions)
  }

  async function startPod (): Promise<Pod> {
    const createdAt = performance.now()
    const network = await node.addPodNetwork()
    const app = await startCommand(t, ...node.inNamespace(network.namespace, process.execPath, fixtureArgs('service.ts')), { env: podEnv })
    kubelet.child.stdin!.write(`add ${network.address}\n`)
    await kubelet.waitForLog(line => line.msg === 'probe' && line.pod === network.address && line.path === '/ready' && line.status === 200,
      `${network.name}'s readiness probe passing`)
    return { ...network, app, startupMs: Math.round(performance.now() - createdAt) }
  }

  // Started now, as the first pods are, since every TypeScript process takes seconds to start; it sends nothing until told to.
  const loadOptions: LoadOptions[] = LOADS.map(({ keepAlive, ratePerSecond }) =>
    ({ host: SERVICE.address, port: SERVICE.port, keepAlive, ratePerSecond, workMs: WORK_MS, timeoutMs: TIMEOUT_MS }))
  const load = spawnProcess(t, ...inNode('open-load.ts'), { stdin: 'pipe', env: { ...process.env, LOAD_OPTIONS: JSON.stringify(loadOptions) } })
  const pods = await Promise.all(Array.from({ length: REPLICAS }, startPod))
  let endpoints = [...pods]
  await node.setEndpoints(endpoints)

  load.child.stdin!.write('start\n')
  const { startedAtEpochMs } = await load.waitForLog(hasMessage(/^load started$/), 'the load started') as LogLine & { startedAtEpochMs: number }
  await Promise.all(pods.map(pod => receivedRequests(pod, WARM_UP_REQUESTS)))

  const stops: PodStop[] = []
  const replacements: Pod[] = []
  for (const old of pods) {
    const replacement = await startPod()
    replacements.push(replacement)
    endpoints = [...endpoints, replacement]
    await node.setEndpoints(endpoints)

    const signalledAt = performance.now()
    const signalledAtEpochMs = Date.now()
    old.app.kill('SIGTERM')
    // The scenario itself: until the endpoint change reaches kube-proxy, it still routes here.
    await sleep(lagMs)
    endpoints = endpoints.filter(pod => pod !== old)
    await node.setEndpoints(endpoints)
    const exit = await old.app.exited
    kubelet.child.stdin!.write(`remove ${old.address}\n`)
    stops.push({
      pod: old.name,
      exit,
      signalledAtMs: signalledAtEpochMs - startedAtEpochMs,
      signalToExitMs: Math.round(exit.at - signalledAt),
      servedAfterSignal: old.app.logs.filter(line => requestFor('/predict')(line) && Number(line.time) >= signalledAtEpochMs).length
    })
  }

  load.child.stdin!.end()
  const { results } = await load.waitForLog(hasMessage(/^load finished$/), 'the load finished') as LogLine & { results: LoadResult[] }
  return {
    lagMs,
    loads: LOADS.map(({ name }, i) => ({ name, result: results[i]! })),
    stops,
    replacements: replacements.map(pod => ({ startupMs: pod.startupMs, served: pod.app.logs.filter(requestFor('/predict')).length }))
  }
}

/** Resolves once the pod has received this many POST /predict requests. */
function receivedRequests (pod: Pod, count: number): Promise<LogLine> {
  let received = 0
  return pod.app.waitForLog(line => requestFor('/predict')(line) && ++received === count, `${count} requests received by ${pod.name}`)
}

/** The run in a few lines, for t.comment and a benchmark's console. */
export function summary ({ lagMs, loads, stops, replacements }: KubeRollingUpdate): string[] {
  return [
    ...loads.flatMap(({ name, result }) => [
      `${name}: ${result.sent} requests in ${(result.elapsedMs / 1000).toFixed(1)} s (sent at ${result.sendRate.toFixed(1)} per second), ` +
        `latency p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms; ` +
        `status codes ${JSON.stringify(result.statusCodes)}; errors ${JSON.stringify(result.errors)}`,
      ...failureLines(result.failures).map(line => `${name}: ${line}`)
    ]),
    `SIGTERMs at ${stops.map(stop => stop.signalledAtMs).join(', ')} ms, each endpoint removed ${lagMs} ms later; per pod, SIGTERM to exit: ` +
      stops.map(stop => `${stop.pod} ${stop.signalToExitMs} ms (${stop.exit.signal ?? `code ${stop.exit.code}`}, ` +
        `${stop.servedAfterSignal} requests received after SIGTERM)`).join(', '),
    'replacements, started until ready / requests received: ' + replacements.map(({ startupMs, served }) => `${startupMs} ms / ${served}`).join(', ')
  ]
}
