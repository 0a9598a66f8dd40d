import http from 'node:http'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServiceProcess } from './child.js'

export interface Target { host: string, port: number }

/** A probe's answer: the status code ('200', '503'), or 'refused', 'reset', 'timeout', 'not HTTP'. */
export type ProbeAnswer = string

/** One GET on a connection of its own, as a platform's prober makes it. */
export function probe ({ host, port }: Target, path: string, timeoutMs: number): Promise<ProbeAnswer> {
  return new Promise(resolve => {
    const request = http.get({ host, port, path, agent: false, timeout: timeoutMs }, response => {
      response.resume()
      response.once('end', () => resolve(String(response.statusCode)))
      response.once('error', () => resolve('reset'))
    })
    request.once('timeout', () => { request.destroy(); resolve('timeout') })
    request.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve('refused')
      else if (err.code?.startsWith('HPE_')) resolve('not HTTP')
      else resolve('reset')
    })
  })
}

/** Whether a TCP connection is accepted. */
export function connects ({ host, port }: Target, timeoutMs: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = net.connect({ host, port, timeout: timeoutMs })
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.once('connect', () => done(true)).once('error', () => done(false)).once('timeout', () => done(false))
  })
}

export class StartError extends Error {}

/**
 * Answers that say the service has no readiness route, rather than that it is not ready: no such
 * path (404), not for GET (405), no GET at all (501, Python's http.server), or not HTTP.
 */
const NO_READINESS_ROUTE = ['404', '405', '501', 'not HTTP']

/**
 * Resolves once the service is ready: its readiness path answers 2xx, or, when it has none, or there is no path to ask, once it accepts a TCP connection. Rejects with a
 * StartError when the process exits first or startTimeout passes.
 */
export async function waitUntilReady (target: Target, service: ServiceProcess,
  { readyPath, startTimeout }: { readyPath: string | false, startTimeout: number }): Promise<'http' | 'tcp'> {
  const deadline = performance.now() + startTimeout
  let last = 'no answer'
  while (performance.now() < deadline) {
    if (service.exit !== undefined) break
    if (readyPath === false) {
      if (await connects(target, 1000)) return 'tcp'
      last = 'refused'
    } else {
      last = await probe(target, readyPath, 1000)
      if (/^2\d\d$/.test(last)) return 'http'
      if (NO_READINESS_ROUTE.includes(last)) return 'tcp'
    }
    await Promise.race([sleep(50), service.exited])
  }
  const exit = service.exit
  if (exit?.error !== undefined) throw new StartError(`the command could not be started: ${exit.error.message}`)
  if (exit !== undefined) {
    throw new StartError(`the service exited before it was ready (${exit.signal === null ? `code ${exit.code}` : `killed by ${exit.signal}`})`)
  }
  const what = readyPath === false ? 'accepted no connection' : `was not ready (${readyPath}: ${last})`
  throw new StartError(`the service ${what} within --start-timeout ${startTimeout} ms`)
}

export interface ReadinessChange {
  /** ms since the signal; negative before it. */
  atMs: number
  answer: ProbeAnswer
}

/** Polls the readiness path through the run and keeps each change of answer, with its time. */
export class ReadinessPoller {
  readonly #changes: Array<{ at: number, answer: ProbeAnswer }> = []
  #running = true
  readonly #done: Promise<void>

  constructor (target: Target, path: string, intervalMs: number) {
    this.#done = (async () => {
      while (this.#running) {
        const sentAt = performance.now()
        const answer = await probe(target, path, Math.max(1000, intervalMs))
        if (!this.#running) break
        if (this.#changes.at(-1)?.answer !== answer) this.#changes.push({ at: sentAt, answer })
        await sleep(Math.max(0, sentAt + intervalMs - performance.now()))
      }
    })()
  }

  async stop (): Promise<void> {
    this.#running = false
    await this.#done
  }

  /** The changes, timed from the signal (ms). */
  changes (signalAt: number): ReadinessChange[] {
    return this.#changes.map(({ at, answer }) => ({ atMs: Math.round(at - signalAt), answer }))
  }
}
