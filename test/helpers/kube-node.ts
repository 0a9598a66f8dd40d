// A Kubernetes node's Service path, built with the kernel's own parts: network namespaces for the
// node and its pods, a bridge between them, and the nat chains kube-proxy writes in its iptables
// mode. Only addresses of 198.18.0.0/15 (the benchmark range) are used, only inside namespaces
// made here: the root namespace's interfaces, routes and rules are never touched.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { Teardown } from './app-process.js'
import { findBinary } from './system.js'

/** The Service's ClusterIP and port, from the node's service range (198.19.0.0/16). */
export const SERVICE = { address: '198.19.0.10', port: 80 } as const
/** Where the pods listen, and what the Service's targetPort is. */
export const POD_PORT = 8000

const BRIDGE = 'cbr0'
const NODE_ADDRESS = '198.18.0.1'
const SERVICE_RANGE = '198.19.0.0/16'
const PREFIX = 'kube-e2e'
/** kube-e2e-<pid>-<node>-<role>: the pid says whether the run that made it is still alive. */
const OURS = new RegExp(`^${PREFIX}-(\\d+)-\\d+-`)

export interface Binaries { ip: string, iptablesRestore: string }

/** What the test needs, or why it cannot run. */
export function nodeBinaries (): Binaries | string {
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root'
  const ip = findBinary('ip')
  const iptables = findBinary('iptables')
  const iptablesRestore = findBinary('iptables-restore')
  if (ip === undefined) return 'ip is not installed (apt-get install iproute2; .ci/run does it)'
  if (iptables === undefined || iptablesRestore === undefined) return 'iptables is not installed (apt-get install iptables; .ci/run does it)'
  return { ip, iptablesRestore }
}

export interface PodNetwork {
  /** pod2, pod3, …: the last byte of its address. */
  name: string
  namespace: string
  address: string
}

export interface KubeNode {
  /** The node's own namespace: where the clients and the kubelet run. */
  namespace: string
  /** The command and arguments that run `command ...args` inside a namespace. */
  inNamespace (namespace: string, command: string, args: string[]): [string, string[]]
  /** A new pod's namespace, wired to the node's bridge, with the next free address. */
  addPodNetwork (): Promise<PodNetwork>
  /** Writes the Service's chains for these endpoints, in one atomic iptables-restore, as kube-proxy does. */
  setEndpoints (endpoints: PodNetwork[]): Promise<void>
}

let nodes = 0

/**
 * A node: a namespace with a bridge (198.18.0.1/24) that pods plug into, and kube-proxy's jump
 * from OUTPUT to KUBE-SERVICES. Teardown deletes every namespace it made; what an earlier run
 * left behind when it crashed is deleted first.
 */
export async function startKubeNode (t: Teardown, { ip, iptablesRestore }: Binaries): Promise<KubeNode> {
  await removeStaleNamespaces(ip)
  const name = `${PREFIX}-${process.pid}-${++nodes}`
  const namespaces: string[] = []
  t.teardown(async () => {
    const failures: string[] = []
    for (const namespace of namespaces.reverse()) {
      await run(ip, ['netns', 'del', namespace]).catch((err: Error) => failures.push(err.message))
    }
    if (failures.length > 0) throw new Error(`namespaces left behind:\n${failures.join('\n')}`)
  })
  const inNamespace = (namespace: string, command: string, args: string[]): [string, string[]] =>
    [ip, ['netns', 'exec', namespace, command, ...args]]
  const inNode = (command: string, args: string[], input?: string): Promise<void> => run(...inNamespace(node, command, args), input)
  async function addNamespace (namespace: string): Promise<void> {
    await run(ip, ['netns', 'add', namespace])
    namespaces.push(namespace)
    await run(ip, ['-n', namespace, 'link', 'set', 'lo', 'up'])
  }

  const node = `${name}-node`
  await addNamespace(node)
  await run(ip, ['-n', node, 'link', 'add', BRIDGE, 'type', 'bridge'])
  await run(ip, ['-n', node, 'addr', 'add', `${NODE_ADDRESS}/24`, 'dev', BRIDGE])
  await run(ip, ['-n', node, 'link', 'set', BRIDGE, 'up'])
  // On a node the default route carries ClusterIPs until OUTPUT's DNAT rewrites them; this
  // namespace has no way out, so the service range gets a route of its own, to the bridge.
  await run(ip, ['-n', node, 'route', 'add', SERVICE_RANGE, 'dev', BRIDGE])
  await inNode(iptablesRestore, ['--noflush'], [
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    'COMMIT',
    ''
  ].join('\n'))

  let lastPod = 1
  let written: PodNetwork[] = []
  return {
    namespace: node,
    inNamespace,
    async addPodNetwork () {
      const number = ++lastPod
      if (number > 254) throw new Error('no address left on the node\'s /24')
      const pod = { name: `pod${number}`, namespace: `${name}-pod${number}`, address: `198.18.0.${number}` }
      await addNamespace(pod.namespace)
      const hostSide = `veth${number}`
      await run(ip, ['-n', node, 'link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.namespace])
      await run(ip, ['-n', node, 'link', 'set', hostSide, 'master', BRIDGE, 'up'])
      await run(ip, ['-n', pod.namespace, 'addr', 'add', `${pod.address}/24`, 'dev', 'eth0'])
      await run(ip, ['-n', pod.namespace, 'link', 'set', 'eth0', 'up'])
      await run(ip, ['-n', pod.namespace, 'route', 'add', 'default', 'via', NODE_ADDRESS])
      return pod
    },
    async setEndpoints (endpoints) {
      await inNode(iptablesRestore, ['--noflush'], serviceChains(endpoints, written.filter(pod => !endpoints.some(({ name }) => name === pod.name))))
      written = endpoints.map(({ name, namespace, address }) => ({ name, namespace, address }))
    }
  }
}

const SERVICE_CHAIN = 'KUBE-SVC-PREDICT'
const endpointChain = (pod: PodNetwork): string => `KUBE-SEP-${pod.name.toUpperCase()}`

/**
 * The nat table's Service chains as kube-proxy's iptables mode writes them: KUBE-SERVICES matches
 * the ClusterIP and jumps to the Service's chain, which picks endpoint i of n with probability
 * 1/(n - i) (the last one unconditionally), and each endpoint's chain DNATs to its pod. Declaring
 * a chain flushes it, so the restore replaces them all at once; a removed endpoint's chain is
 * deleted in the same transaction. Connections already open keep their conntrack entry, and so
 * their pod, as on a real node.
 */
function serviceChains (endpoints: PodNetwork[], removed: PodNetwork[]): string {
  const comment = '-m comment --comment "default/predict"'
  return [
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    `:${SERVICE_CHAIN} - [0:0]`,
    ...[...endpoints, ...removed].map(pod => `:${endpointChain(pod)} - [0:0]`),
    `-A KUBE-SERVICES -d ${SERVICE.address}/32 -p tcp -m comment --comment "default/predict cluster IP" -m tcp --dport ${SERVICE.port} -j ${SERVICE_CHAIN}`,
    ...endpoints.map((pod, i) => {
      const remaining = endpoints.length - i
      const statistic = remaining === 1 ? '' : ` -m statistic --mode random --probability ${(1 / remaining).toFixed(10)}`
      return `-A ${SERVICE_CHAIN} -m comment --comment "default/predict -> ${pod.address}:${POD_PORT}"${statistic} -j ${endpointChain(pod)}`
    }),
    ...endpoints.map(pod => `-A ${endpointChain(pod)} -p tcp ${comment} -m tcp -j DNAT --to-destination ${pod.address}:${POD_PORT}`),
    ...removed.map(pod => `-X ${endpointChain(pod)}`),
    'COMMIT',
    ''
  ].join('\n')
}

/** Namespaces of a run whose process is gone (killed before its teardown): their processes, then themselves. */
async function removeStaleNamespaces (ip: string): Promise<void> {
  const list = await output(ip, ['netns', 'list'])
  for (const namespace of list.split('\n').map(line => line.split(' ')[0]!)) {
    const pid = OURS.exec(namespace)?.[1]
    if (pid === undefined || isAlive(Number(pid))) continue
    for (const stray of (await output(ip, ['netns', 'pids', namespace])).split('\n').filter(Boolean)) {
      try { process.kill(Number(stray), 'SIGKILL') } catch {}
    }
    await run(ip, ['netns', 'del', namespace])
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const run = async (command: string, args: string[], input?: string): Promise<void> => { await output(command, args, input) }

/** Runs a command to its end and resolves with its stdout; rejects with its stderr when it fails. */
async function output (command: string, args: string[], input?: string): Promise<string> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdin.end(input)
  const [code] = await once(child, 'close') as [number | null]
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (code ${code}): ${stderr.trim()}${input === undefined ? '' : `\ninput:\n${input}`}`)
  return stdout
}
