// The same steps as the bin, for a program or a test of its own: parse (pure), resolve (reads the
// Dockerfile and cerebrium.toml), verify (gathers the facts), judge, format.
export { parseArguments, USAGE, type EngineName, type VerifyArguments } from './arguments.js'
export { InvalidOptionError, UsageError } from './errors.js'
export { resolveSettings, type ContainerSpec, type ProcessSpec, type ServiceSpec, type VerifyOptions } from './settings.js'
export { verify, type Phase, type Progress, type Run, type RunOptions } from './run.js'
export { judge, type Report } from './verdict.js'
export { formatReport } from './report.js'
export type { RequestCounts } from './load.js'
export type { IdleSocketCounts } from './idle-sockets.js'
export type { ReadinessChange } from './readiness.js'
