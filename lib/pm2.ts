import cluster from 'node:cluster'

/** The part of `process` that talks to PM2 over the IPC channel PM2 opens to every process it runs. */
export interface IpcProcess {
  /** Undefined when the process has no IPC channel. */
  send?: (message: string) => unknown
  connected?: boolean
  channel?: { unref (): void } | undefined
  on (event: 'message', listener: (message: unknown) => void): unknown
  off (event: 'message', listener: (message: unknown) => void): unknown
}

/** What PM2 sends instead of the stop signal when the app sets shutdown_with_message. */
export const PM2_SHUTDOWN_MESSAGE = 'shutdown'

/** What PM2 waits for, with wait_ready, before it counts a process as started. */
export const PM2_READY_MESSAGE = 'ready'

export interface Pm2Channel {
  /**
   * Tells PM2 the app is ready: with wait_ready, PM2 stops the process this one replaces only then
   * (else after listen_timeout). Once per process, however many instances listen; true if sent now.
   */
  sendReady (): boolean
  /** Calls `listener` on each 'shutdown' message; returns the way to stop listening. */
  onShutdownMessage (listener: () => void): () => void
}

/**
 * `clusterWorker`: the process is a worker of PM2's cluster mode, whose channel to the primary also
 * carries the worker's listen(): it must stay as Node keeps it.
 */
export function pm2Channel (ipc: IpcProcess, { clusterWorker }: { clusterWorker: boolean }): Pm2Channel {
  let readySent = false
  return {
    sendReady () {
      if (readySent || typeof ipc.send !== 'function' || ipc.connected !== true) return false
      readySent = true
      ipc.send(PM2_READY_MESSAGE)
      return true
    },
    onShutdownMessage (listener) {
      const onMessage = (message: unknown): void => { if (message === PM2_SHUTDOWN_MESSAGE) listener() }
      ipc.on('message', onMessage)
      // A 'message' listener holds the process open through the channel: an app that is done (its
      // listen failed, or it closed itself) must still exit, as it would without PM2. Not in a
      // cluster worker: unref'd, its channel would no longer hold it open while listen() awaits the
      // primary's answer, and it would exit then; PM2's own 'message' listener holds it open anyway.
      if (!clusterWorker) ipc.channel?.unref()
      return () => { ipc.off('message', onMessage) }
    }
  }
}

/** This process's channel to PM2: one for the process, so 'ready' goes out once. */
export const pm2 = pm2Channel(process as IpcProcess, { clusterWorker: cluster.isWorker })
