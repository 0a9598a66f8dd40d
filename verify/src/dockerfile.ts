import { constants } from 'node:os'

/** What a container built from a Dockerfile runs, and how the engine stops it. */
export interface RunStage {
  command: string[]
  /** The run stage's ENV, as the container would have it. */
  env: Record<string, string>
  /** The CMD or ENTRYPOINT is in shell form: /bin/sh -c runs it, and /bin/sh receives the signal. */
  shellForm: boolean
  /** The first port the run stage EXPOSEs, if it does. */
  exposedPort: number | undefined
  /** STOPSIGNAL, else SIGTERM: what the engine's stop sends to PID 1. */
  stopSignal: NodeJS.Signals
}

interface Instruction { keyword: string, args: string }

/** The run stage (the last one) of a Dockerfile: continuation lines joined, comments dropped. */
function runStage (text: string): Instruction[] {
  let stage: Instruction[] = []
  for (const raw of text.replace(/\\[ \t]*\r?\n/g, ' ').split(/\r?\n/)) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    if (keyword.toUpperCase() === 'FROM') stage = []
    stage.push({ keyword: keyword.toUpperCase(), args: args.trim() })
  }
  return stage
}

/** Exec form (a JSON array of strings) as the array, shell form as /bin/sh -c, as Docker runs them. */
function commandForm (args: string): { argv: string[], shellForm: boolean } {
  if (args.startsWith('[')) {
    try {
      const argv: unknown = JSON.parse(args)
      if (Array.isArray(argv) && argv.every(item => typeof item === 'string')) return { argv, shellForm: false }
    } catch {}
  }
  // Docker too runs a bracketed line that is not a JSON array of strings in shell form.
  return { argv: ['/bin/sh', '-c', args], shellForm: true }
}

/** `ENV A=1 B="two words"` or the legacy `ENV A one value`. */
export function envPairs (args: string): Array<[string, string]> {
  const legacy = /^([^\s=]+)\s+(.*)$/.exec(args)
  if (legacy !== null && !legacy[1]!.includes('=')) return [[legacy[1]!, legacy[2]!]]
  const pairs: Array<[string, string]> = []
  for (const [, key, double, single, bare] of args.matchAll(/([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))/g)) {
    pairs.push([key!, double?.replace(/\\(.)/g, '$1') ?? single ?? bare ?? ''])
  }
  return pairs
}

/** `STOPSIGNAL SIGINT`, `STOPSIGNAL INT` or `STOPSIGNAL 2`, as a signal name. */
function signalName (args: string): NodeJS.Signals | undefined {
  const name = /^\d+$/.test(args)
    ? Object.entries(constants.signals).find(([, number]) => number === Number(args))?.[0]
    : args.toUpperCase().replace(/^(SIG)?/, 'SIG')
  return name !== undefined && name in constants.signals ? name as NodeJS.Signals : undefined
}

/**
 * The run stage of a Dockerfile's text: its command (ENTRYPOINT and CMD combined as Docker
 * combines them), ENV, EXPOSE and STOPSIGNAL. Throws an Error saying what is missing.
 */
export function parseDockerfile (text: string): RunStage {
  const stage = runStage(text)
  const last = (keyword: string): string | undefined => stage.filter(i => i.keyword === keyword).at(-1)?.args
  const cmd = last('CMD')
  const entrypoint = last('ENTRYPOINT')
  if (cmd === undefined && entrypoint === undefined) throw new Error('its last stage has no CMD or ENTRYPOINT')

  let command: { argv: string[], shellForm: boolean }
  if (entrypoint === undefined) {
    command = commandForm(cmd!)
  } else {
    const entry = commandForm(entrypoint)
    const args = cmd === undefined ? undefined : commandForm(cmd)
    // A shell-form ENTRYPOINT ignores CMD; an exec-form one takes CMD as its arguments.
    command = entry.shellForm || args === undefined
      ? entry
      : { argv: [...entry.argv, ...args.argv], shellForm: args.shellForm }
  }
  if (command.argv.length === 0) throw new Error('its CMD is empty')

  const stopSignalLine = last('STOPSIGNAL')
  const stopSignal = stopSignalLine === undefined ? 'SIGTERM' : signalName(stopSignalLine)
  if (stopSignal === undefined) throw new Error(`its STOPSIGNAL ${JSON.stringify(stopSignalLine)} is not a signal`)
  const expose = /^(\d+)/.exec(stage.filter(i => i.keyword === 'EXPOSE')[0]?.args ?? '')?.[1]
  return {
    command: command.argv,
    env: Object.fromEntries(stage.filter(i => i.keyword === 'ENV').flatMap(i => envPairs(i.args))),
    shellForm: command.shellForm,
    exposedPort: expose === undefined ? undefined : Number(expose),
    stopSignal
  }
}
