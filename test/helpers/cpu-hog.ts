// A busy machine, for the tests whose races only show under load: processes that spin on every
// core for as long as the test runs, so the app's event loop lags as on a replica under load.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import type { Teardown } from './app-process.js'

/** Starts `processes` busy loops (one per core by default); teardown kills them. */
export function startCpuHog (t: Teardown, processes = os.availableParallelism()): void {
  for (let index = 0; index < processes; index++) {
    const hog = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' })
    const exited = once(hog, 'exit')
    t.teardown(async () => {
      hog.kill('SIGKILL')
      await exited
    })
  }
}
