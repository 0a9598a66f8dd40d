import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RawRequest } from './connections.js'
import type { ResolvedOptions } from './options.js'

export interface ProbeSource {
  readonly ready: boolean
  readonly activeRequests: number
  readonly queued: number
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
  source: ProbeSource
): (request: FastifyRequest) => boolean {
  const { readyPath, healthPath } = options
  if (readyPath === false && healthPath === false) return () => false

  let probes: FastifyInstance | undefined
  fastify.register(async function probeRoutes (scope) {
    probes = scope
    if (readyPath !== false) {
      scope.get(readyPath, { logLevel: 'warn' }, async (_request, reply) => {
        const figures = { active_requests: source.activeRequests, queued: source.queued }
        if (source.ready) return { status: 'ready', ...figures }
        return reply.code(503).header('retry-after', options.retryAfter)
          .send({ status: 'shutting_down', ...figures })
      })
    }
    if (healthPath !== false) {
      scope.get(healthPath, { logLevel: 'warn' }, async () => ({ status: 'ok' }))
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
