import fs from 'node:fs'
import type net from 'node:net'

/** Listeners come first in the table: past this many bytes, ours is not among them. */
const LISTENERS_READ_LIMIT = 256 * 1024
/** Small reads: the kernel formats a line or two per read, so ours is read just before it returns. */
const READ_SIZE = 512
const LISTEN = '0A'

/**
 * How many connections the kernel has completed on a listener and the app has not accepted yet.
 * Closing a listener resets each of them, and its client has usually sent its request by then.
 * That the event loop's last poll accepted nothing only says the queue was empty at that poll: a
 * client can connect while the turn runs its callbacks, which under load takes milliseconds.
 * Linux shows the queue's length as the rx_queue of the listening socket's line in
 * /proc/net/tcp (tcp6), read here right before the close. Undefined where it cannot be known:
 * another OS, a Unix socket, a table that lists the socket nowhere among its listeners.
 */
export function acceptQueueLength (server: net.Server): number | undefined {
  const address = server.address()
  const fd = (server as net.Server & { _handle?: { fd?: number } | null })._handle?.fd
  if (address === null || typeof address === 'string' || fd === undefined || fd < 0) return undefined
  let inode: string | undefined
  try {
    inode = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))?.[1]
  } catch {
    return undefined
  }
  if (inode === undefined) return undefined
  return acceptQueueIn(address.family === 'IPv6' ? '/proc/net/tcp6' : '/proc/net/tcp', inode)
}

/** The accept queue's length on the line of listening socket `inode` in `table`, a /proc/net/tcp. */
export function acceptQueueIn (table: string, inode: string): number | undefined {
  let fd: number
  try {
    fd = fs.openSync(table, 'r')
  } catch {
    return undefined
  }
  try {
    const chunk = Buffer.allocUnsafe(READ_SIZE)
    let pending = ''
    let header = true
    for (let total = 0; total < LISTENERS_READ_LIMIT;) {
      const read = fs.readSync(fd, chunk, 0, READ_SIZE, null)
      if (read === 0) return undefined
      total += read
      const lines = (pending + chunk.toString('latin1', 0, read)).split('\n')
      pending = lines.pop()!
      for (const line of lines) {
        if (header) {
          header = false
          continue
        }
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
        const fields = line.trim().split(/\s+/)
        if (fields[3] !== LISTEN) return undefined
        if (fields[9] === inode) return Number.parseInt(fields[4]!.split(':')[1]!, 16)
      }
    }
    return undefined
  } finally {
    fs.closeSync(fd)
  }
}
