// The example app under the real PM2, in cluster mode with two instances and under an open-loop
// load: only the real thing shows what a cluster reload, PM2's IPC messages and its kill_timeout
// do to the requests in flight. Needs `npm run build` (dist/example-app/server.js).
import t, { type Test } from 'tap'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { hasMessage, type LogLine } from './helpers/app-process.js'
import { exampleAppEnv } from './helpers/example-app.js'
import { request } from './helpers/http.js'
import { startPm2Daemon, waitForAppLogs, type Pm2App, type Pm2Daemon } from './helpers/pm2.js'
import { failedRequests, startOpenLoad, type LoadResult } from './helpers/open-load.js'
import { freePort } from './helpers/system.js'

const exampleApp = fileURLToPath(new URL('../dist/example-app/server.js', import.meta.url))
const repositoryToml = fileURLToPath(new URL('../cerebrium.toml', import.meta.url))
/** Two instances, 50 requests per second each. */
const INSTANCES = 2
const RATE_PER_SECOND = 100
/** PM2's own, when the ecosystem file sets no kill_timeout. */
const PM2_DEFAULT_KILL_TIMEOUT = 1600

const pm2 = startPm2Daemon(t, exampleAppEnv())

const isPlugin = (line: LogLine): boolean => line.plugin === 'fastify-graceful-termination'
const listening = hasMessage(/^Server listening at/)

/** The example app in cluster mode, started in a working directory of its own; resolves once every instance listens. */
async function startCluster (t: Test, app: Omit<Pm2App, 'script' | 'cwd' | 'exec_mode' | 'instances' | 'env'>, { toml = false } = {}) {
  const port = await freePort()
  const cwd = t.testdir()
  // The repository's cerebrium.toml asks for a 90 s grace period: more than PM2 gives.
  if (toml) copyFileSync(repositoryToml, join(cwd, 'cerebrium.toml'))
  await pm2.start(t, { ...app, script: exampleApp, cwd, exec_mode: 'cluster', instances: INSTANCES, env: { PORT: String(port), HOST: '127.0.0.1' } })
  await waitForAppLogs(pm2, app.name, listening, INSTANCES)
  const pids = (await pm2.list()).filter(process => process.name === app.name).map(process => process.pid)
  return { port, pids }
}

/** The lines one process wrote, by its pid. */
const linesOf = (daemon: Pm2Daemon, name: string, pid: number): LogLine[] => daemon.appLogs(name).filter(line => line.pid === pid)

/** PM2's account of how each of the app's processes ended: 'exited with code [0] via signal [SIGINT]'. */
function exits (daemon: Pm2Daemon, name: string): string[] {
  return daemon.daemonLog().flatMap(line => {
    const exit = new RegExp(`App \\[${name}:(?:_old_)?\\d+\\] (exited with code \\[\\d+\\] via signal \\[\\w+\\])`).exec(line)
    return exit === null ? [] : [exit[1]!]
  })
}

/**
 * PM2's lines about a SIGKILL it sent one of these processes. PM2 polls every 100 ms: a process
 * that exited since its last look is 'still alive after 1600ms' with '0 remaining pids', unkilled.
 */
const sigkills = (daemon: Pm2Daemon, pids: number[]): string[] =>
  daemon.daemonLog().filter(line => pids.some(pid => new RegExp(`pid ${pid} still alive after \\d+ms, sending SIGKILL to [1-9]`).test(line)))

function describe (load: LoadResult): string {
  return `${load.sent} requests: ${JSON.stringify(load.statusCodes)}, errors ${JSON.stringify(load.errors)}, p99 ${load.latencyMs.p99} ms`
}

/**
 * `pm2 reload` a second into an open-loop load of durationMs; the load's result, and how long the
 * reload took. A connection per request: what is under test is the reload, not HTTP/1.1's
 * keep-alive race (a request written on an idle connection as the drained process closes it),
 * which test/connections.test.ts and the benchmarks measure on their own.
 */
async function reloadUnderLoad (t: Test, name: string, port: number, durationMs: number) {
  const load = startOpenLoad(t, { port, keepAlive: false, ratePerSecond: RATE_PER_SECOND, durationMs, workMs: [200, 400], timeoutMs: 10_000 })
  await sleep(1000)
  const reload = await pm2.run('reload', name)
  const result = await load.finished
  t.comment(`reload took ${Math.round(reload.elapsedMs)} ms; ${describe(result)}`)
  return { result, reloadMs: reload.elapsedMs }
}

t.test('cluster reload under load: nothing lost, and every old process logs its whole shutdown', async t => {
  const name = 'reload'
  const { port, pids } = await startCluster(t, { name })
  const { result } = await reloadUnderLoad(t, name, port, 6000)
  t.equal(failedRequests(result), 0, 'no request failed')

  for (const pid of pids) {
    const lines = linesOf(pm2, name, pid).filter(isPlugin)
    t.match(lines.find(hasMessage(/^shutdown started/)), { reason: 'SIGINT', gracePeriod: PM2_DEFAULT_KILL_TIMEOUT }, `${pid}: shutdown started on PM2's SIGINT`)
    t.match(lines.slice(-2).map(line => line.msg), [/^drained/, 'shutdown complete'], `${pid}: its last lines are in PM2's log`)
  }
  t.same(exits(pm2, name), ['exited with code [0] via signal [SIGINT]', 'exited with code [0] via signal [SIGINT]'], 'each exited 0 by itself')
  t.same(sigkills(pm2, pids), [], 'PM2 killed nothing')
})

t.test('3 s requests and the default kill_timeout: each process cuts them and exits 1 by itself before the SIGKILL, saying why', async t => {
  const name = 'cut'
  const { port, pids } = await startCluster(t, { name }, { toml: true })
  // 10 per second: within the toml's replica_concurrency (10, and as many queued) on each instance;
  // for 10 s, so that both old processes stop with requests in flight.
  const load = startOpenLoad(t, { port, ratePerSecond: 10, durationMs: 10_000, workMs: [3000, 3000], timeoutMs: 10_000 })
  await sleep(1500)
  const reload = await pm2.run('reload', name)
  const result = await load.finished
  t.comment(`reload took ${Math.round(reload.elapsedMs)} ms; ${describe(result)}`)

  for (const pid of pids) {
    const lines = linesOf(pm2, name, pid).filter(isPlugin)
    t.match(lines.find(hasMessage(/^gracePeriod is 90000 ms/)), { window: PM2_DEFAULT_KILL_TIMEOUT }, `${pid}: the toml's 90 s are capped, with a warning`)
    const started = lines.find(hasMessage(/^shutdown started/))
    t.ok(Number(started?.drainDeadlineMs) < PM2_DEFAULT_KILL_TIMEOUT, `${pid}: the drain is planned within kill_timeout (${started?.drainDeadlineMs} ms)`)
    const cut = lines.filter(hasMessage(/^cut request/)).length
    t.ok(cut > 0, `${pid}: every cut request is in PM2's log (${cut})`)
    t.equal(lines.at(-1)?.msg, 'exiting with code 1: work was still in flight at the drain deadline', `${pid}: the last line says why`)
  }
  t.same(exits(pm2, name), ['exited with code [1] via signal [SIGINT]', 'exited with code [1] via signal [SIGINT]'], 'each exited 1 by itself')
  t.same(sigkills(pm2, pids), [], 'before PM2 sent SIGKILL')
})

t.test("wait_ready: the plugin's 'ready' ends PM2's wait, so a reload takes no longer than without", async t => {
  const LISTEN_TIMEOUT = 8000
  await startCluster(t, { name: 'waits', wait_ready: true, listen_timeout: LISTEN_TIMEOUT })
  await startCluster(t, { name: 'listens' })
  const withReady = (await pm2.run('reload', 'waits')).elapsedMs
  const without = (await pm2.run('reload', 'listens')).elapsedMs
  t.comment(`reload with wait_ready: ${Math.round(withReady)} ms; without: ${Math.round(without)} ms`)
  t.ok(withReady < LISTEN_TIMEOUT, "far below listen_timeout: 'ready' ended each wait")
  t.ok(withReady <= without * 1.5 + 1000, 'no longer than without, give or take')
  // Two at the start, two after the reload: one per process.
  t.equal((await waitForAppLogs(pm2, 'waits', hasMessage(/^sent PM2 'ready'/), 2 * INSTANCES)).length, 2 * INSTANCES)
})

t.test("shutdown_with_message: pm2 restart and reload send 'shutdown', the plugin drains and exits 0", async t => {
  const name = 'message'
  const { port, pids } = await startCluster(t, { name, shutdown_with_message: true })
  const restartLoad = startOpenLoad(t, { port, ratePerSecond: RATE_PER_SECOND, durationMs: 4000, workMs: [200, 400], timeoutMs: 10_000 })
  await sleep(1000)
  // Requests well under way when PM2 sends 'shutdown': each is answered.
  const inFlight = Array.from({ length: 4 }, () => request(port, '/predict', {
    method: 'POST',
    body: JSON.stringify({ input: 'in flight', ms: 800 }),
    headers: { 'content-type': 'application/json' }
  }))
  await sleep(100)
  const restart = await pm2.run('restart', name)
  t.same((await Promise.all(inFlight)).map(response => response.status), [200, 200, 200, 200], 'every request in flight is answered')
  const restarted = await restartLoad.finished
  t.comment(`restart took ${Math.round(restart.elapsedMs)} ms; ${describe(restarted)}`)
  // PM2 restarts both processes at once (two concurrent actions): for a moment none listens, and
  // the connections made then fail in Node's cluster primary: refused, or, as the last worker
  // leaves, reset or never handed to a worker (a timeout). None of them reached a process; every
  // request that did got its answer (each process drained, below).
  t.same(Object.keys(restarted.statusCodes), ['200'], 'every response is a 200')
  for (const pid of pids) {
    const lines = linesOf(pm2, name, pid).filter(isPlugin)
    t.match(lines.find(hasMessage(/^shutdown started/)), { reason: 'shutdown message' }, `${pid}: the message started the shutdown`)
    t.match(lines.slice(-2).map(line => line.msg), [/^drained/, 'shutdown complete'], `${pid}: drained, nothing cut, and closed`)
  }
  t.same(exits(pm2, name), ['exited with code [0] via signal [SIGINT]', 'exited with code [0] via signal [SIGINT]'], 'each exited 0 by itself')

  // A reload replaces one process at a time: nothing is refused, nothing lost.
  const restartedPids = (await pm2.list()).filter(process => process.name === name).map(process => process.pid)
  await waitForAppLogs(pm2, name, line => restartedPids.includes(line.pid as number) && listening(line), INSTANCES)
  const { result: reloaded } = await reloadUnderLoad(t, name, port, 5000)
  t.equal(failedRequests(reloaded), 0, 'no request failed')
  t.equal(exits(pm2, name).filter(exit => exit === 'exited with code [0] via signal [SIGINT]').length, 4, 'each exited 0 by itself')
  t.same(sigkills(pm2, [...pids, ...restartedPids]), [], 'PM2 killed nothing')
})
