import type { FastifyInstance } from 'fastify'
import { realpathSync } from 'node:fs'
import { NotRootError } from './errors.js'

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
