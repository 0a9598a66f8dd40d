import { baseEnv } from './app-process.js'

/** The variables through which the environment overrides the example app's cerebrium.toml. */
const OVERRIDES = ['GRACE_PERIOD_MS', 'READINESS_DELAY_MS', 'MAX_CONCURRENCY']

/**
 * The test run's environment for the example app: on 127.0.0.1, on any free port, and without an
 * override the test did not ask for, so a variable set in the shell cannot change what is tested.
 */
export function exampleAppEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...baseEnv(), HOST: '127.0.0.1', PORT: '0' }
  for (const name of OVERRIDES) delete env[name]
  return { ...env, ...extra }
}
