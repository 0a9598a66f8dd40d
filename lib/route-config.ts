import type { FastifyRequest, RouteOptions } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { formatValue } from './options.js'

/** What a route may say of itself: `config: { graceful: { ... } }`. */
export interface GracefulRouteConfig {
  /** Served while startup work is pending (an admin or metrics route), where others get a 503. Default false. */
  serveWhileStarting?: boolean
  /**
   * false: outside maxConcurrency. For a route that holds its request open without working, a
   * WebSocket or an event stream of notifications: it would keep a slot from the app's real work
   * for its whole life. It still counts as in flight, so the drain waits for it. Default true.
   */
  limit?: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    graceful?: GracefulRouteConfig
  }
}

const ROUTE_SETTINGS: ReadonlyArray<keyof GracefulRouteConfig> = ['serveWhileStarting', 'limit']

/** A request's own route settings. Building routeOptions costs on every request: read only when needed. */
const settingsOf = (request: FastifyRequest): GracefulRouteConfig | undefined => request.routeOptions.config.graceful

export function servedWhileStarting (request: FastifyRequest): boolean {
  return settingsOf(request)?.serveWhileStarting === true
}

export interface RouteConfig {
  /**
   * The onRoute hook: a route's `config.graceful` is checked when the route is added, like the
   * plugin's options, with the route in the error.
   */
  check (route: RouteOptions): void
  /** Whether a request's route is outside maxConcurrency; costs nothing until a route says so. */
  outOfLimit (request: FastifyRequest): boolean
}

export function createRouteConfig (): RouteConfig {
  let someOutOfLimit = false
  return {
    check (route) {
      const settings = (route.config as { graceful?: unknown } | undefined)?.graceful
      if (settings === undefined) return
      const where = `config.graceful of route ${[route.method].flat().join(',')} ${route.url}`
      const fail = (name: string, value: unknown, allowed: string): never => { throw new InvalidOptionError(name, allowed, formatValue(value)) }
      if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) fail(where, settings, 'an object')
      for (const [key, value] of Object.entries(settings as object)) {
        if (!ROUTE_SETTINGS.includes(key as keyof GracefulRouteConfig)) fail(`${where}: ${key}`, value, `one of ${ROUTE_SETTINGS.join(', ')} (unknown setting)`)
        if (typeof value !== 'boolean') fail(`${where}: ${key}`, value, 'a boolean')
      }
      if ((settings as GracefulRouteConfig).limit === false) someOutOfLimit = true
    },
    outOfLimit: request => someOutOfLimit && settingsOf(request)?.limit === false
  }
}
