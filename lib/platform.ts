export type PlatformName = 'pm2' | 'cloud-run' | 'fly' | 'ecs' | 'kubernetes'

/**
 * What the plugin knows of the platform that stops this process: how long it waits between the
 * stop signal and SIGKILL, and whether it still routes here after the signal.
 */
export interface Platform {
  name: PlatformName
  /** The variable that told: each platform documents one its processes always get. */
  detectedBy: string
  /** Milliseconds between the stop signal and SIGKILL when nothing else is said of it. */
  window: number
  /** Where that window comes from, as a log line or a warning names it. */
  windowSource: string
  /** True when the app cannot lengthen the window (Cloud Run) or knows its exact value (PM2): the drain is planned within it. */
  windowIsFixed: boolean
  /** Where the user sets that window, for a warning that asks to raise it; undefined where nothing can. */
  windowSetting: string | undefined
  /** True when routing to the process stops after the signal, not before (Kubernetes). */
  routesAfterSignal: boolean
  /** The signal it stops the process with. */
  stopSignal: 'SIGTERM' | 'SIGINT'
}

type Env = Record<string, string | undefined>

/** Something to tell at start: the fields of the log line, and its message. */
export interface Warning { fields: object, message: string }

/** PM2 sends SIGKILL this long after SIGINT unless kill_timeout says otherwise. */
export const PM2_DEFAULT_KILL_TIMEOUT = 1600

/**
 * The platforms in the order they are looked for, each by a variable it documents: a process
 * manager first (PM2 signals this very process, wherever it runs), Kubernetes last (other
 * platforms run on it and set its variables too).
 */
const PLATFORMS: Platform[] = [
  {
    name: 'pm2',
    detectedBy: 'pm_id',
    window: PM2_DEFAULT_KILL_TIMEOUT,
    windowSource: "PM2's default kill_timeout",
    windowIsFixed: true,
    windowSetting: 'kill_timeout in the ecosystem file (or pm2 start --kill-timeout)',
    routesAfterSignal: false,
    stopSignal: 'SIGINT'
  },
  {
    name: 'cloud-run',
    detectedBy: 'K_SERVICE',
    window: 10_000,
    windowSource: "Cloud Run's fixed 10 s",
    windowIsFixed: true,
    windowSetting: undefined,
    routesAfterSignal: false,
    stopSignal: 'SIGTERM'
  },
  {
    name: 'fly',
    detectedBy: 'FLY_APP_NAME',
    window: 5000,
    windowSource: "Fly.io's default kill_timeout",
    windowIsFixed: false,
    windowSetting: "fly.toml's kill_timeout",
    routesAfterSignal: false,
    stopSignal: 'SIGINT'
  },
  {
    name: 'ecs',
    detectedBy: 'ECS_CONTAINER_METADATA_URI_V4',
    window: 30_000,
    windowSource: "ECS's default stopTimeout",
    windowIsFixed: false,
    windowSetting: "the container's stopTimeout (at most 120 s on Fargate)",
    routesAfterSignal: false,
    stopSignal: 'SIGTERM'
  },
  {
    name: 'kubernetes',
    detectedBy: 'KUBERNETES_SERVICE_HOST',
    window: 30_000,
    windowSource: "Kubernetes' default terminationGracePeriodSeconds",
    windowIsFixed: false,
    windowSetting: "the pod's terminationGracePeriodSeconds",
    routesAfterSignal: true,
    stopSignal: 'SIGTERM'
  }
]

/** Every variable the detection reads: a test that wants no platform removes them all. */
export const PLATFORM_VARIABLES: readonly string[] = [...PLATFORMS.map(({ detectedBy }) => detectedBy), 'kill_timeout']

/** The platform this process runs on, from the variables it documents; undefined when none is found. */
export function detectPlatform (env: Env = process.env): Platform | undefined {
  const platform = PLATFORMS.find(({ detectedBy }) => env[detectedBy] !== undefined)
  // PM2 puts kill_timeout in the environment only when it was set explicitly.
  if (platform?.name === 'pm2' && /^[1-9]\d{0,8}$/.test(env.kill_timeout ?? '')) {
    return { ...platform, window: Number(env.kill_timeout), windowSource: "PM2's kill_timeout" }
  }
  return platform
}

/**
 * The gracePeriod to plan on: past a window the platform fixes it is capped there, since SIGKILL
 * comes then whatever the app says; past a default window it is kept, with a warning naming the
 * setting to raise.
 */
export function fitToWindow (platform: Platform, gracePeriod: number, source: string): { gracePeriod: number, warning?: Warning } {
  const { window, windowSource, windowSetting } = platform
  if (gracePeriod <= window) return { gracePeriod }
  const fields = { gracePeriod, source, platform: platform.name, window }
  const said = `gracePeriod is ${gracePeriod} ms (from ${source})`
  if (platform.windowIsFixed) {
    const lengthen = windowSetting === undefined ? 'it cannot be lengthened' : `to lengthen it, raise ${windowSetting}`
    return {
      gracePeriod: window,
      warning: { fields, message: `${said} but ${windowSource} sends SIGKILL ${window} ms after the stop signal: the drain is planned on ${window} ms; ${lengthen}` }
    }
  }
  return {
    gracePeriod,
    warning: { fields, message: `${said} but ${windowSource} is ${window} ms: unless ${windowSetting} is at least ${Math.ceil(gracePeriod / 1000)} s, SIGKILL cuts the drain` }
  }
}
