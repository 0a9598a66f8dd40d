import type { FastifyInstance, FastifyRequest } from 'fastify'
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
