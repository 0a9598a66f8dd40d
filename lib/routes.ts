import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ResolvedOptions } from './options.js'

export interface ProbeSource {
  readonly ready: boolean
  readonly activeRequests: number
  readonly queued: number
}

/**
 * Readiness tells the platform whether to route here (Cerebrium's readycheck_endpoint, a
 * Kubernetes readinessProbe); liveness whether to restart the process, so it stays 200 while
 * the process drains: a restart then would cut what the drain is protecting.
 *
 * Returns the test that tells a probe from any other request: probes are never counted, queued
 * or refused. The routes live in a scope of their own, so the test is one comparison on the hot
 * path (request.server is the scope a route was declared in), where reading the route's config
 * would build Fastify's routeOptions object for every request.
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
