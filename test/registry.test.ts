// The connection registry in this process, on a plain http.Server over real TCP: what it keeps of
// connections that closed while serving, and that the shutdown still hears every close.
import t, { type Test } from 'tap'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Connections } from '../lib/connections.js'

setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

interface WatchedServer {
  connections: Connections
  port: number
  /** The server's side of each connection, as accepted. */
  accepted: net.Socket[]
  /** Resolves once the server's side of `count` connections has closed. */
  closed (count: number): Promise<void>
}

async function watchedServer (t: Test): Promise<WatchedServer> {
  const server = http.createServer((request, response) => response.end('ok'))
  const connections = new Connections({ onRequestEnd: () => {}, isProbe: () => false })
  connections.watch(server)
  const accepted: net.Socket[] = []
  let closedCount = 0
  let waiting: { count: number, resolve (): void } | undefined
  server.on('connection', (socket: net.Socket) => {
    accepted.push(socket)
    socket.on('close', () => {
      closedCount++
      if (waiting !== undefined && closedCount >= waiting.count) waiting.resolve()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return {
    connections,
    port: (server.address() as AddressInfo).port,
    accepted,
    closed: count => closedCount >= count ? Promise.resolve() : new Promise(resolve => { waiting = { count, resolve } })
  }
}

/** A connection that has had one keep-alive response and is now idle. */
async function idleConnection (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await once(socket, 'data')
  return socket
}

t.test('connections that closed while serving are let go: the registry does not keep them', async t => {
  const { port, accepted, closed } = await watchedServer(t)
  const closedSockets: Array<WeakRef<net.Socket>> = []
  for (let index = 0; index < 500; index++) {
    const client = await idleConnection(port)
    client.end()
    await closed(index + 1)
    closedSockets.push(new WeakRef(accepted.pop()!))
  }
  // A WeakRef holds its target until the turn that made it is over.
  await new Promise(resolve => setImmediate(resolve))
  collectGarbage()
  const kept = closedSockets.filter(socket => socket.deref() !== undefined).length
  t.comment(`${kept} of 500 closed connections still referenced after a full collection`)
  t.ok(kept <= 100, `no more than a sweep's worth is kept (${kept})`)
})

t.test('after connections closed unheard, the shutdown closes those still open and hears each close', async t => {
  const { connections, port, closed } = await watchedServer(t)
  const clients = await Promise.all(Array.from({ length: 200 }, () => idleConnection(port)))
  const [gone, open] = [clients.slice(0, 150), clients.slice(150)]
  for (const client of gone) client.end()
  await closed(gone.length)
  const finReceived = Promise.all(open.map(client => once(client, 'end')))

  connections.retire()
  const idle = connections.closeIdle()
  await idle.finSent
  t.equal(idle.closed, open.length, 'every connection still open got a FIN, no closed one counted')
  await finReceived
  await connections.allClosed()
  await closed(clients.length)
  t.pass('allClosed() resolved once every client had closed its side')
  t.equal(connections.destroyAll(), 0, 'nothing was left to destroy')
})
