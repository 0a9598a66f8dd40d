import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectHttp2 } from './client.js'
import type { Service } from './service.js'
import type { Target } from './target.js'

/**
 * A probe's answer: the status code ('200', '503'), or 'refused', 'reset', 'timeout', 'not HTTP',
 * 'not HTTP/2', or 'TLS <code>' when the certificate was not accepted.
 */
export type ProbeAnswer = string

/** What a failed probe tells, from the error's code. */
function failedProbe (err: NodeJS.ErrnoException, http2: boolean): ProbeAnswer {
  const code = err.code ?? ''
  if (code === 'ECONNREFUSED') return 'refused'
  if (code.startsWith('HPE_')) return 'not HTTP'
  // A service that speaks HTTP/1.1 answers the HTTP/2 preface with a 400 and a close.
  if (http2 && /^ERR_HTTP2_(ERROR|SESSION_ERROR|STREAM_CANCEL)$/.test(code) && err.cause === undefined) return 'not HTTP/2'
  if (/CERT|SELF_SIGNED|ERR_TLS/.test(code)) return `TLS ${code}`
  return 'reset'
}

/** One GET on a connection of its own, as a platform's prober makes it. */
export function probe (target: Target, path: string, timeoutMs: number): Promise<ProbeAnswer> {
  return target.http2 ? probeHttp2(target, path, timeoutMs) : probeHttp1(target, path, timeoutMs)
}

function probeHttp1 ({ host, port, tls, insecure }: Target, path: string, timeoutMs: number): Promise<ProbeAnswer> {
  return new Promise(resolve => {
    const options = { host, port, path, agent: false as const, timeout: timeoutMs }
    const request = tls ? https.get({ ...options, rejectUnauthorized: !insecure }) : http.get(options)
    request.once('response', response => {
      response.resume()
      response.once('end', () => resolve(String(response.statusCode)))
      response.once('error', () => resolve('reset'))
    })
    request.once('timeout', () => { request.destroy(); resolve('timeout') })
    request.once('error', (err: NodeJS.ErrnoException) => resolve(failedProbe(err, false)))
  })
}

function probeHttp2 (target: Target, path: string, timeoutMs: number): Promise<ProbeAnswer> {
  return new Promise(resolve => {
    const session = connectHttp2(target)
    const done = (answer: ProbeAnswer): void => {
      clearTimeout(timer)
      session.destroy()
      resolve(answer)
    }
    const timer = setTimeout(() => done('timeout'), timeoutMs)
    session.once('error', (err: NodeJS.ErrnoException) => done(failedProbe(err, true)))
    const stream = session.request({ ':method': 'GET', ':path': path })
    let status: string | undefined
    stream.once('response', headers => { status = String(headers[':status']) })
    stream.on('error', (err: NodeJS.ErrnoException) => done(failedProbe(err, true)))
    stream.once('close', () => done(status ?? (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset')))
    stream.resume()
  })
}

/** Whether a TCP connection is accepted. */
export function connects ({ host, port }: Pick<Target, 'host' | 'port'>, timeoutMs: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = net.connect({ host, port, timeout: timeoutMs })
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.once('connect', () => done(true)).once('error', () => done(false)).once('timeout', () => done(false))
  })
}

export class StartError extends Error {
  /** The last lines the service (or the image's build) wrote: why, often. */
  readonly output: string[]

  constructor (message: string, output: string[] = []) {
    super(message)
    this.output = output
  }
}

/**
 * Answers that say the service has no readiness route, rather than that it is not ready: no such
 * path (404), not for GET (405), no GET at all (501, Python's http.server), or not HTTP.
 */
const NO_READINESS_ROUTE = ['404', '405', '501', 'not HTTP']

/**
 * Resolves once the service is ready: its readiness path answers 2xx, or, when it has none or
 * there is no path to ask, once it accepts a TCP connection. Rejects with a StartError when the
 * service exits first or startTimeout passes, and with the signal's reason when it aborts.
 */
export async function waitUntilReady (target: Target, service: Service,
  { readyPath, startTimeout }: { readyPath: string | false, startTimeout: number }, signal?: AbortSignal): Promise<'http' | 'tcp'> {
  const deadline = performance.now() + startTimeout
  let last = 'no answer'
  while (performance.now() < deadline) {
    signal?.throwIfAborted()
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
  signal?.throwIfAborted()
  const exit = service.exit
  if (exit?.error !== undefined) throw new StartError(`the command could not be started: ${exit.error.message}`)
  if (exit !== undefined) throw new StartError(`the service exited before it was ready (${describeExit(exit)})`)
  const what = readyPath === false ? 'accepted no connection' : `was not ready (${readyPath}: ${last})`
  throw new StartError(`the service ${what} within --start-timeout ${startTimeout} ms`)
}

/** `code 3`, or `killed by SIGKILL`. */
export function describeExit ({ code, signal }: { code: number | null, signal: NodeJS.Signals | null }): string {
  return signal === null ? `code ${code}` : `killed by ${signal}`
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
