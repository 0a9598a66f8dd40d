import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { UsageError } from '../errors.js'

/** What a container built from a Dockerfile runs, to be run here from the build context. */
export interface DockerCommand {
  command: string[]
  /** The Dockerfile's directory, taken as the build context: COPY paths are relative to it. */
  cwd: string
  /** The run stage's ENV, as the container would have it. */
  env: Record<string, string>
  /** The CMD or ENTRYPOINT is in shell form: /bin/sh -c runs it, and /bin/sh receives the signal. */
  shellForm: boolean
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

/** The command of a Dockerfile's run stage: ENTRYPOINT and CMD combined as Docker combines them. */
export function commandFromDockerfile (file: string, { cwd = process.cwd() } = {}): DockerCommand {
  const path = resolve(cwd, file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new UsageError(`--dockerfile ${JSON.stringify(file)} cannot be read: ${(err as Error).message}`)
  }
  const stage = runStage(text)
  const last = (keyword: string): string | undefined => stage.filter(i => i.keyword === keyword).at(-1)?.args
  const cmd = last('CMD')
  const entrypoint = last('ENTRYPOINT')
  if (cmd === undefined && entrypoint === undefined) {
    throw new UsageError(`--dockerfile ${JSON.stringify(file)}: its last stage has no CMD or ENTRYPOINT`)
  }

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
  if (command.argv.length === 0) throw new UsageError(`--dockerfile ${JSON.stringify(file)}: its CMD is empty`)

  const env = Object.fromEntries(stage.filter(i => i.keyword === 'ENV').flatMap(i => envPairs(i.args)))
  return { command: command.argv, cwd: dirname(path), env, shellForm: command.shellForm }
}
