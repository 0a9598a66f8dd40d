import { createHash, randomBytes } from 'node:crypto'
import type { EngineName } from './arguments.js'
import { chooseEngine, runEngine } from './engine.js'
import { StartError } from './readiness.js'
import { processRuns, type Service, type ServiceExit } from './service.js'
import type { ContainerSpec } from './settings.js'

/** Variables a build needs to reach a registry from behind a proxy; Docker and Podman pass these build arguments without an ARG, and keep them out of the image. */
const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'all_proxy']

/** The exit code of a container whose PID 1 the engine killed with SIGKILL (128 + 9). */
const KILLED = 137

export interface BuiltContainer {
  engine: EngineName
  image: string
  buildMs: number
}

/** Builds the Dockerfile's image; rejects with a StartError holding the build's last lines when it fails. */
export async function buildImage (spec: ContainerSpec, { env, signal }: { env: NodeJS.ProcessEnv, signal?: AbortSignal | undefined }): Promise<BuiltContainer> {
  const engine = await chooseEngine(spec.engine, env, signal)
  // One tag per Dockerfile: a rebuild replaces the last one instead of piling up images.
  const image = `graceful-shutdown-check:${createHash('sha256').update(spec.dockerfilePath).digest('hex').slice(0, 12)}`
  const buildArgs = PROXY_VARIABLES.filter(name => env[name] !== undefined).flatMap(name => ['--build-arg', `${name}=${env[name]}`])
  const startedAt = performance.now()
  const build = await runEngine(engine, ['build', '-f', spec.dockerfilePath, '-t', image, ...buildArgs, spec.context], { env, signal })
  if (build.code !== 0) throw new StartError(`${engine} build of ${spec.dockerfile} failed (exit code ${build.code})`, build.lines)
  return { engine, image, buildMs: Math.round(performance.now() - startedAt) }
}

/**
 * The image running in the engine, its port published on 127.0.0.1 only, with PORT set to the
 * port it EXPOSEs. The engine's `stop` stops it as a platform does: the image's STOPSIGNAL to PID
 * 1, SIGKILL once the grace period (whole seconds) has passed.
 */
export class ContainerService implements Service {
  readonly exited: Promise<ServiceExit>
  readonly #engine: EngineName
  readonly #name: string
  readonly #env: NodeJS.ProcessEnv
  readonly #waiting = new AbortController()
  #pid: number | undefined
  #exit: ServiceExit | undefined
  #removed: Promise<unknown> | undefined

  private constructor (engine: EngineName, name: string, env: NodeJS.ProcessEnv) {
    this.#engine = engine
    this.#name = name
    this.#env = env
    // `wait` prints the exit code once the container has exited, whenever that is.
    this.exited = runEngine(engine, ['wait', name], { env, signal: this.#waiting.signal }).then(
      ({ code, stdout }) => {
        const exitCode = Number(stdout.trim())
        return { code: code === 0 && Number.isInteger(exitCode) ? exitCode : null, signal: null, at: performance.now() }
      },
      /* c8 ignore next: `wait` is aborted only once the container is removed, after its exit was seen */
      () => ({ code: null, signal: null, at: performance.now() }))
    this.exited.then(exit => { this.#exit = exit })
  }

  static async start (spec: ContainerSpec, built: BuiltContainer, { hostPort, env, signal }: { hostPort: number, env: NodeJS.ProcessEnv, signal?: AbortSignal | undefined }): Promise<ContainerService> {
    const name = `graceful-shutdown-check-${randomBytes(6).toString('hex')}`
    const { engine, image } = built
    const remove = (): Promise<unknown> => runEngine(engine, ['rm', '--force', name], { env })
    // Aborted while the engine was creating it, the container may exist all the same.
    const run = await runEngine(engine, ['run', '--detach', '--name', name, '--publish', `127.0.0.1:${hostPort}:${spec.containerPort}`,
      '--env', `PORT=${spec.containerPort}`, image, ...spec.commandOverride ?? []], { env, signal }).catch(async (err: unknown) => { await remove(); throw err })
    if (run.code !== 0) {
      await remove()
      throw new StartError(`${engine} run of ${image} failed (exit code ${run.code})`, run.lines)
    }
    const service = new ContainerService(engine, name, env)
    const inspect = await runEngine(engine, ['inspect', '--format', '{{.State.Pid}}', name], { env })
    const pid = Number(inspect.stdout.trim())
    // 0 once it has exited; elsewhere than Linux, a pid of the engine's VM, not of this machine.
    if (process.platform === 'linux' && pid > 0) service.#pid = pid
    return service
  }

  get pid (): number | undefined {
    return this.#pid
  }

  get exit (): ServiceExit | undefined {
    return this.#exit
  }

  alive (): boolean {
    return this.#exit === undefined && processRuns(this.#pid)
  }

  async stop (_signal: NodeJS.Signals, gracePeriodMs: number): Promise<{ killed: boolean }> {
    const seconds = Math.ceil(gracePeriodMs / 1000)
    const stoppedAt = performance.now()
    // -t: docker's --timeout and podman's --time, under the one short name both take.
    await runEngine(this.#engine, ['stop', '-t', String(seconds), this.#name], { env: this.#env })
    const exit = await this.exited
    // The engine tells no more than the exit code: 137 once the grace period is over is its SIGKILL.
    return { killed: exit.code === KILLED && exit.at - stoppedAt >= seconds * 1000 }
  }

  async lastLines (): Promise<string[]> {
    return (await runEngine(this.#engine, ['logs', '--tail', '30', this.#name], { env: this.#env })).lines
  }

  async destroy (): Promise<void> {
    this.#removed ??= runEngine(this.#engine, ['rm', '--force', this.#name], { env: this.#env })
    await this.#removed
    this.#waiting.abort()
    await this.exited
  }
}
