// The accept queue as Linux shows it, read right before a listener closes (see lib/accept-queue.ts).
import t from 'tap'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import { acceptQueueIn, acceptQueueLength } from '../lib/accept-queue.js'
import type { Teardown } from './helpers/app-process.js'

async function listening (t: Teardown, options: net.ListenOptions): Promise<net.Server> {
  const server = net.createServer(socket => socket.destroy())
  server.listen(options)
  await once(server, 'listening')
  t.teardown(() => server.close())
  return server
}

/**
 * Connects `count` clients before the event loop polls again: net.connect() calls connect() on
 * the next tick, and on loopback the kernel completes the handshake within it.
 */
async function connectNow (t: Teardown, server: net.Server, count: number): Promise<void> {
  const { port, address } = server.address() as net.AddressInfo
  for (let index = 0; index < count; index++) {
    const client = net.connect(port, address).on('error', () => {})
    t.teardown(() => client.destroy())
  }
  await new Promise(resolve => process.nextTick(resolve))
}

t.test('counts the connections the kernel completed and the app has not accepted', async t => {
  const server = await listening(t, { port: 0, host: '127.0.0.1' })
  t.equal(acceptQueueLength(server), 0, 'none yet')
  await connectNow(t, server, 3)
  t.equal(acceptQueueLength(server), 3, 'three, before the event loop polls')
  for (let accepted = 0; accepted < 3; accepted++) await once(server, 'connection')
  t.equal(acceptQueueLength(server), 0, 'none once the loop has accepted them')
})

t.test('on IPv6 too', { skip: os.networkInterfaces().lo?.some(address => address.address === '::1') === true ? false : 'no ::1 here' }, async t => {
  const server = await listening(t, { port: 0, host: '::1' })
  await connectNow(t, server, 2)
  t.equal(acceptQueueLength(server), 2)
})

t.test('undefined where it cannot be known', async t => {
  const unixSocket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'accept-queue-')), 'server.sock')
  t.equal(acceptQueueLength(await listening(t, { path: unixSocket })), undefined, 'a Unix socket')
  t.equal(acceptQueueLength(net.createServer()), undefined, 'a server not listening')
  const listener = await listening(t, { port: 0, host: '127.0.0.1' })
  // The listener, its descriptor swapped for another.
  const handle = (listener as unknown as { _handle: { getsockname (out: object): number } })._handle
  const withFd = (fd: number): net.Server =>
    Object.assign(Object.create(listener) as net.Server, { _handle: { fd, getsockname: handle.getsockname.bind(handle) } })
  t.equal(acceptQueueLength(withFd((listener as unknown as { _handle: { fd: number } })._handle.fd)), 0, 'the swap alone changes nothing')
  t.equal(acceptQueueLength(withFd(1 << 20)), undefined, 'a descriptor that is not open')
  const file = fs.openSync('package.json', 'r')
  t.teardown(() => fs.closeSync(file))
  t.equal(acceptQueueLength(withFd(file)), undefined, 'a descriptor that is no socket')
})

t.test('reads the listeners at the head of the table, and no further', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accept-queue-'))
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
  const line = (state: string, queue: number, inode: number): string =>
    `   0: 0100007F:1F90 00000000:0000 ${state} 00000000:${queue.toString(16).toUpperCase().padStart(8, '0')} 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0`.padEnd(149) + '\n'
  const table = (name: string, content: string): string => {
    fs.writeFileSync(path.join(dir, name), content)
    return path.join(dir, name)
  }
  const listeners = Array.from({ length: 40 }, (_, index) => line('0A', index, 1000 + index)).join('')
  const established = line('01', 0, 7)
  t.equal(acceptQueueIn(table('found', header + listeners + established), '1026'), 26, 'the listener\'s rx_queue, in hex')
  t.equal(acceptQueueIn(table('past', header + listeners + line('01', 0, 5000) + line('0A', 3, 5001)), '5001'), undefined,
    'not past the first line that listens not')
  t.equal(acceptQueueIn(table('short', header + listeners), '5001'), undefined, 'not found by the end')
  const many = header + Array.from({ length: 2000 }, (_, index) => line('0A', 0, 10_000 + index)).join('') + line('0A', 9, 5001)
  t.equal(acceptQueueIn(table('long', many), '5001'), undefined, 'not past the first 256 KiB')
  t.equal(acceptQueueIn(path.join(dir, 'missing'), '1'), undefined, 'no such table')
})
