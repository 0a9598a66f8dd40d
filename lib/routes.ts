import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CheckSet } from './checks.js'
import type { RawRequest } from './connections.js'
import type { ResolvedOptions } from './options.js'
import type { LifecycleState } from './shutdown.js'

/** What the probes report: read from fastify.graceful when they are asked. */
export interface ProbeSource {
  readonly state: LifecycleState
  readonly activeRequests: number
  readonly queued: number
}

export interface ProbeChecks {
  readonly readinessChecks: CheckSet
  readonly livenessChecks: CheckSet
}

/**
 * Readiness says whether to route here; liveness whether to restart the process, so it stays 200
 * while draining: a restart would cut what the drain protects. Returns the test that tells a
 * probe (never counted, queued or refused) from other requests: the routes have a scope of their
 * own, so it is one comparison per request, where reading route config would build an object.
 */
export function registerProbeRoutes (
  fastify: FastifyInstance,
  options: Pick<ResolvedOptions, 'readyPath' | 'healthPath' | 'retryAfter'>,
  source: ProbeSource,
  { readinessChecks, livenessChecks }: ProbeChecks
): (request: FastifyRequest) => boolean {
  const { readyPath, healthPath } = options
  if (readyPath === false && healthPath === false) return () => false

  let probes: FastifyInstance | undefined
  fastify.register(async function probeRoutes (scope) {
    probes = scope
    if (readyPath !== false) {
      scope.get(readyPath, { logLevel: 'warn' }, async (_request, reply) => {
        const figures = { active_requests: source.activeRequests, queued: source.queued }
        const unavailable = (body: object) => reply.code(503).header('retry-after', options.retryAfter).send(body)
        // The drain owns readiness once it starts, and a replica still starting is not ready:
        // neither waits for a check.
        if (source.state === 'starting') return unavailable({ status: 'starting', ...figures })
        if (source.state !== 'serving') return unavailable({ status: 'shutting_down', ...figures })
        if (readinessChecks.empty) return { status: 'ready', ...figures }
        const { ok, checks } = await readinessChecks.results()
        // Read again: the shutdown may have started while the checks ran.
        if (source.state !== 'serving') return unavailable({ status: 'shutting_down', ...figures })
        return ok ? { status: 'ready', ...figures, checks } : unavailable({ status: 'not_ready', ...figures, checks })
      })
    }
    if (healthPath !== false) {
      scope.get(healthPath, { logLevel: 'warn' }, async (_request, reply) => {
        if (livenessChecks.empty) return { status: 'ok' }
        const { ok, checks } = await livenessChecks.results()
        return ok ? { status: 'ok', checks } : reply.code(503).send({ status: 'unhealthy', checks })
      })
    }
  })
  return request => request.server === probes
}

/**
 * Whether a request that has not reached Fastify yet is a platform's probe: one of the plugin's
 * routes, or the kubelet's own (its User-Agent is kube-probe/<version>, whatever path it probes).
 */
export function isProbeRequest ({ readyPath, healthPath }: Pick<ResolvedOptions, 'readyPath' | 'healthPath'>): (request: RawRequest) => boolean {
  return request => {
    const url = request.url ?? ''
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    return path === readyPath || path === healthPath || request.headers['user-agent']?.startsWith('kube-probe/') === true
  }
}
