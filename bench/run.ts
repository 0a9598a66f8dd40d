// npm run bench: runs every benchmark and writes its figures into the README, between the
// bench markers, with the machine and the command. `npm run bench -- memory overhead` runs
// only those and prints their figures, leaving the README as it is.
import { readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { stopServers, type Figure } from './common.js'
import { exitLatency } from './exit-latency.js'
import { keepAliveRace } from './keepalive-race.js'
import { keepAliveShutdown } from './keepalive-shutdown.js'
import { kubeProxyRollingUpdate } from './kube-proxy.js'
import { memory } from './memory.js'
import { nginxRollingRestart } from './nginx-rolling-restart.js'
import { limitOverhead, overhead } from './overhead.js'

const BENCHMARKS: Record<string, () => Promise<Figure[]>> = {
  overhead,
  'limit-overhead': limitOverhead,
  'exit-latency': exitLatency,
  'keepalive-shutdown': keepAliveShutdown,
  'keepalive-race': keepAliveRace,
  memory,
  nginx: nginxRollingRestart,
  'kube-proxy': kubeProxyRollingUpdate
}
const README = fileURLToPath(new URL('../README.md', import.meta.url))
const START = '<!-- bench:start -->'
const END = '<!-- bench:end -->'

const requested = process.argv.slice(2)
const unknown = requested.filter(name => !(name in BENCHMARKS))
if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}`)
const names = requested.length > 0 ? requested : Object.keys(BENCHMARKS)

const figures: Figure[] = []
for (const name of names) {
  console.log(`\n== ${name}`)
  try {
    figures.push(...await BENCHMARKS[name]!())
  } finally {
    await stopServers()
  }
}

const cpus = os.cpus()
const machine = `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${os.availableParallelism()} cores (nproc), ` +
  `${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`
const section = [
  START,
  `Measured with \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${machine}.`,
  '',
  '| figure | result | target | met |',
  '| --- | --- | --- | --- |',
  ...figures.map(figure => `| ${figure.name} | ${figure.result} | ${figure.target} | ${figure.met === undefined ? '—' : figure.met ? 'yes' : '**no**'} |`),
  END
].join('\n')
console.log(`\n${section}`)

if (requested.length === 0) {
  const readme = await readFile(README, 'utf8')
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start === -1 || end < start) throw new Error(`README.md has no ${START} … ${END} section to write into`)
  await writeFile(README, readme.slice(0, start) + section + readme.slice(end + END.length))
  console.log('\nREADME.md updated')
}
