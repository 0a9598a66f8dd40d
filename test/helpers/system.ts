// What the tests need from the machine: binaries of the system's packages, and ports.
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import net from 'node:net'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** A binary on PATH or in the sbin directories (Debian's haproxy and nginx), or undefined. */
export function findBinary (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']
  for (const dir of dirs.filter(Boolean)) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

// The one verify uses to pick the port it gives a service.
export { freePort } from '../../verify/src/run.js'

/** Whether a server could listen on this port now: no other socket listens on it. */
export async function canListen (port: number): Promise<boolean> {
  const server = net.createServer()
  try {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
  } catch {
    return false
  }
  server.close()
  await once(server, 'close')
  return true
}

/** Resolves once the port can be listened on; rejects after `attempts` tries `intervalMs` apart. */
export async function waitUntilListenable (port: number, { attempts, intervalMs }: { attempts: number, intervalMs: number }): Promise<void> {
  for (let attempt = 1; !await canListen(port); attempt++) {
    if (attempt === attempts) throw new Error(`port ${port} still in use after ${attempts} attempts ${intervalMs} ms apart`)
    await sleep(intervalMs)
  }
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds; rejects after `attempts` tries. */
export async function waitUntilAccepting (port: number, { attempts, intervalMs }: { attempts: number, intervalMs: number }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const socket = net.connect(port, '127.0.0.1')
    try {
      await once(socket, 'connect')
      return
    } catch (err) {
      if (attempt === attempts) throw err
    } finally {
      socket.destroy()
    }
    await sleep(intervalMs)
  }
}
