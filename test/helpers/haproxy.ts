import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Teardown } from './app-process.js'
import { LogWatcher } from './log-watcher.js'
import { findBinary, freePort } from './system.js'

/** The haproxy binary, or undefined. Debian puts it in /usr/sbin, not on every user's PATH. */
export const findHaproxy = (): string | undefined => findBinary('haproxy')

export interface LoadBalancer {
  /** The frontend's port on 127.0.0.1. */
  port: number
  /** Puts a replica listening on this port into service; resolves once HAProxy routes to it. */
  addServer (port: number): Promise<void>
  /** `show stat` for the backend's own row: counters summed over every server. */
  backendStats (): Promise<Record<string, string>>
}

const BACKEND = 'replicas'

/**
 * HAProxy in front of replicas, as a platform's load balancer: it polls readiness every 100 ms
 * and takes a replica out of rotation on the first failure, and it retries a request on another
 * replica when the connection is refused, closed before any response, or answered 503.
 *
 * The backend is a row of empty slots (`server-template`, in maintenance at first) that
 * addServer() fills through the admin socket, so replicas come and go without a reload (a
 * reload would start another haproxy process and reset every health state).
 *
 * `maxconn` is the replica's concurrency (Cerebrium's replica_concurrency): like the platform's
 * router, HAProxy then sends a replica at most that many requests at once and queues the rest.
 */
export async function startHaproxy (t: Teardown, binary: string, { slots, maxconn }: { slots: number, maxconn?: number }): Promise<LoadBalancer> {
  const dir = await mkdtemp(join(tmpdir(), 'haproxy-'))
  const socketPath = join(dir, 'admin.sock')
  const port = await freePort()
  const config = `
global
  stats socket ${socketPath} level admin

defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout queue 30s
  retries 3
  retry-on conn-failure empty-response 503
  # Every retry goes to another replica, not only the last one.
  option redispatch 1

frontend web
  bind 127.0.0.1:${port}
  default_backend ${BACKEND}

backend ${BACKEND}
  option httpchk GET /ready
  http-check expect status 200
  default-server check inter 100 fall 1 rise 1${maxconn === undefined ? '' : ` maxconn ${maxconn}`}
  server-template slot 1-${slots} 127.0.0.1:1 disabled
`
  const configPath = join(dir, 'haproxy.cfg')
  await writeFile(configPath, config)

  const child = spawn(binary, ['-db', '-f', configPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
  })

  const output = new LogWatcher<string>()
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', line => output.add(line))
  }
  exited.then(([code]) => output.end(what => new Error(`haproxy exited (code ${code}) before printing ${what}\n${output.lines.join('\n')}`)),
    (err: Error) => output.end(() => err))

  function command (line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath)
      let answer = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => { answer += chunk })
      socket.on('end', () => resolve(answer.trim()))
      socket.on('error', reject)
      socket.end(`${line}\n`)
    })
  }

  // HAProxy prints nothing once it is ready: its admin socket answering is the sign.
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}\n${output.lines.join('\n')}`)
    try {
      await command('show info')
      break
    } catch (err) {
      if (attempt === 100) throw err
      await sleep(20)
    }
  }

  let used = 0
  return {
    port,
    async addServer (serverPort) {
      if (used === slots) throw new Error(`all ${slots} server slots are used`)
      const name = `slot${++used}`
      await command(`set server ${BACKEND}/${name} addr 127.0.0.1 port ${serverPort}`)
      await command(`set server ${BACKEND}/${name} state ready`)
      const up = new RegExp(`Server ${BACKEND}/${name} is UP`)
      await output.waitFor(line => up.test(line), String(up))
    },
    async backendStats () {
      const [header, ...rows] = (await command('show stat')).split('\n')
      const columns = header!.replace(/^# /, '').split(',')
      const backend = rows.map(row => row.split(',')).find(cells => cells[0] === BACKEND && cells[1] === 'BACKEND')!
      return Object.fromEntries(columns.map((column, i) => [column, backend[i] ?? '']))
    }
  }
}
