import createError, { type FastifyErrorConstructor } from '@fastify/error'

/**
 * Every error the plugin throws, with a stable code. Their types are written out: inferred, the
 * declarations would name @fastify/error's namespace, which 'bundler' resolution cannot see.
 */
type PluginError<Code extends string, Args extends unknown[]> = FastifyErrorConstructor<{ code: Code, statusCode: 500 }, Args>

export const InvalidOptionError: PluginError<'FST_GRACEFUL_INVALID_OPTION', [option: string, allowed: string, received: string]> = createError(
  'FST_GRACEFUL_INVALID_OPTION',
  'fastify-graceful-termination: option %s must be %s, received %s',
  500,
  TypeError
)

export const InvalidCerebriumConfigError: PluginError<'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG', [problem: string, options?: { cause: unknown }]> = createError(
  'FST_GRACEFUL_INVALID_CEREBRIUM_CONFIG',
  'fastify-graceful-termination: %s',
  500,
  TypeError
)

export const NotRootError: PluginError<'FST_GRACEFUL_NOT_ROOT', [where: string]> = createError(
  'FST_GRACEFUL_NOT_ROOT',
  'fastify-graceful-termination must be registered on the root instance (the one you call listen() on), ' +
    'not inside an encapsulated plugin%s: requests outside that plugin would be neither counted nor drained. ' +
    'Register it at the top level, or wrap the plugin that registers it with fastify-plugin.',
  500
)

export const StartupOverError: PluginError<'FST_GRACEFUL_STARTUP_OVER', []> = createError(
  'FST_GRACEFUL_STARTUP_OVER',
  'fastify-graceful-termination: graceful.startup() was called after the app was ready: the gate holds only ' +
    'what must settle before the first request is served. Call it before listen().',
  500
)
