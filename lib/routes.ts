import type { FastifyInstance } from 'fastify'
import type { ResolvedOptions } from './options.js'

/** Marks the plugin's own probe routes, which are never counted, queued or refused. */
export const PROBE_ROUTE = 'gracefulTerminationProbe'

export interface ProbeSource {
  readonly ready: boolean
  readonly activeRequests: number
  readonly queued: number
}

/**
 * Readiness tells the platform whether to route here (Cerebrium's readycheck_endpoint, a
 * Kubernetes readinessProbe); liveness whether to restart the process, so it stays 200 while
 * the process drains: a restart then would cut what the drain is protecting.
 */
export function registerProbeRoutes (
  fastify: FastifyInstance,
  options: Pick<ResolvedOptions, 'readyPath' | 'healthPath' | 'retryAfter'>,
  source: ProbeSource
): void {
  const config = { [PROBE_ROUTE]: true }
  if (options.readyPath !== false) {
    fastify.get(options.readyPath, { config, logLevel: 'warn' }, async (_request, reply) => {
      const figures = { active_requests: source.activeRequests, queued: source.queued }
      if (source.ready) return { status: 'ready', ...figures }
      return reply.code(503).header('retry-after', options.retryAfter)
        .send({ status: 'shutting_down', ...figures })
    })
  }
  if (options.healthPath !== false) {
    fastify.get(options.healthPath, { config, logLevel: 'warn' }, async () => ({ status: 'ok' }))
  }
}

export function isProbeRoute (config: unknown): boolean {
  return (config as Record<string, unknown> | undefined)?.[PROBE_ROUTE] === true
}
