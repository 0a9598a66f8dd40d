import createError, { type FastifyErrorConstructor } from '@fastify/error'
import type { FastifyInstance } from 'fastify'
import { realpathSync } from 'node:fs'

// Typed explicitly: an inferred type would name @fastify/error's namespace, which 'bundler'
// resolution cannot see in the emitted declarations.
export const NotRootError: FastifyErrorConstructor<{ code: 'FST_GRACEFUL_NOT_ROOT', statusCode: 500 }, [where: string]> = createError(
  'FST_GRACEFUL_NOT_ROOT',
  'fastify-graceful-termination must be registered on the root instance (the one you call listen() on), ' +
    'not inside an encapsulated plugin%s: requests outside that plugin would be neither counted nor drained. ' +
    'Register it at the top level, or wrap the plugin that registers it with fastify-plugin.',
  500
)

/**
 * A scope's prototype is its parent; the root's is Object.prototype. Anywhere else only part of
 * the app would be counted, and its probes would move under the scope's prefix.
 */
export function assertRootInstance (fastify: FastifyInstance): void {
  if (Object.getPrototypeOf(fastify) === Object.prototype) return
  throw new NotRootError(fastify.prefix === '' ? '' : ` (prefix ${JSON.stringify(fastify.prefix)})`)
}

/** Whether the process was started by `fastify start`, whose own SIGTERM handler closes the app at once. */
export function startedByFastifyCli (script = process.argv[1]): boolean {
  if (script === undefined) return false
  try {
    return /[\\/]fastify-cli[\\/]/.test(realpathSync(script))
  } catch {
    return false
  }
}

export const FASTIFY_CLI_WARNING = 'started by fastify-cli, whose own SIGTERM handler calls fastify.close() at once and ' +
  'exits 500 ms later (its -g option): readiness never answers 503 and longer requests are cut. ' +
  'Start the app with node instead (node server.js, as a container should); see the README, "Running under fastify-cli"'
