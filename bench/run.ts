// npm run bench: runs every benchmark and writes each one's figures into docs/benchmarks.md,
// between its markers, with the date, the machine, its load and the command.
// `npm run bench -- overhead sse-exit` runs only those (`cost` names the four cost benchmarks)
// and rewrites only their figures; `--dry-run` prints them and leaves the file as it is.
import { readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { loadAverage, round, stopServers, type Figure } from './common.js'
import { connectionMemory } from './connection-memory.js'
import { exitLatency } from './exit-latency.js'
import { keepAliveRace } from './keepalive-race.js'
import { keepAliveShutdown } from './keepalive-shutdown.js'
import { kubeProxyRollingUpdate } from './kube-proxy.js'
import { memory } from './memory.js'
import { nginxRollingRestart } from './nginx-rolling-restart.js'
import { overhead } from './overhead.js'
import { profile } from './profile.js'
import { sseExit } from './sse-exit.js'

const BENCHMARKS: Record<string, () => Promise<Figure[]>> = {
  overhead,
  profile,
  'connection-memory': connectionMemory,
  'sse-exit': sseExit,
  'exit-latency': exitLatency,
  'keepalive-shutdown': keepAliveShutdown,
  'keepalive-race': keepAliveRace,
  memory,
  nginx: nginxRollingRestart,
  'kube-proxy': kubeProxyRollingUpdate
}
const GROUPS: Record<string, string[]> = { cost: ['overhead', 'profile', 'connection-memory', 'sse-exit'] }
const DOCS = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url))

const args = process.argv.slice(2)
const dryRun = args.includes('--dry-run')
const requested = args.filter(arg => arg !== '--dry-run').flatMap(name => GROUPS[name] ?? [name])
const unknown = requested.filter(name => !(name in BENCHMARKS))
if (unknown.length > 0) {
  throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${[...Object.keys(BENCHMARKS), ...Object.keys(GROUPS)].join(', ')}`)
}
const names = requested.length > 0 ? requested : Object.keys(BENCHMARKS)

const cpus = os.cpus()
const machine = `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${os.availableParallelism()} cores (nproc), ` +
  `${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`

// Interrupted, a benchmark still stops the servers it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { stopServers().finally(() => process.exit(130)) })
}

/** Replaces a benchmark's figures in docs/benchmarks.md, between its markers. */
async function writeSection (name: string, section: string): Promise<void> {
  const docs = await readFile(DOCS, 'utf8')
  const start = `<!-- bench:${name}:start -->`
  const end = `<!-- bench:${name}:end -->`
  const from = docs.indexOf(start)
  const to = docs.indexOf(end)
  if (from === -1 || to < from) throw new Error(`docs/benchmarks.md has no ${start} … ${end} section to write into`)
  await writeFile(DOCS, `${docs.slice(0, from + start.length)}\n${section}\n${docs.slice(to)}`)
}

for (const name of names) {
  console.log(`\n== ${name}`)
  const loadBefore = loadAverage()
  let figures: Figure[]
  try {
    figures = await BENCHMARKS[name]!()
  } finally {
    await stopServers()
  }
  const section = [
    `Measured with \`npm run bench -- ${name}\` on ${new Date().toISOString().slice(0, 10)}: ${machine}; ` +
      `load average (1 min) ${round(loadBefore, 2)} before, ${round(loadAverage(), 2)} after.`,
    '',
    '| figure | result | target | met |',
    '| --- | --- | --- | --- |',
    ...figures.map(figure => `| ${figure.name} | ${figure.result} | ${figure.target} | ${figure.met === undefined ? '—' : figure.met ? 'yes' : '**no**'} |`)
  ].join('\n')
  console.log(`\n${section}`)
  // Written as soon as it is measured: a benchmark that fails later loses nothing of this one.
  if (!dryRun) {
    await writeSection(name, section)
    console.log(`docs/benchmarks.md: ${name} updated`)
  }
}
