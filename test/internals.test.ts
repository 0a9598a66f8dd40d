// The plugin leans on a few internals that neither Fastify nor Node documents. Each test here
// fails if a release changes one, before a user finds out by a connection that never drains.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import dns from 'node:dns'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import gracefulTermination from '../lib/index.js'
import { addressesNotWatched, extraServers } from '../lib/servers.js'
import { fixtureArgs, startNodeApp } from './helpers/app-process.js'

const tls = (file: string): string => readFileSync(new URL(`./fixtures/tls/${file}`, import.meta.url), 'utf8')

/** A Fastify instance whose log lines are kept, as objects. */
function loggedApp (): { app: FastifyInstance, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)))
      done()
    }
  })
  const app: FastifyInstance = Fastify({ logger: { stream, level: 'info' } })
  return { app, lines }
}

t.test("Fastify's servers for the other addresses of localhost are found under its private symbol", async t => {
  // localhost as Debian's own /etc/hosts has it, whatever this machine's says: 127.0.0.1 and ::1.
  const lookup = dns.lookup
  t.teardown(() => { dns.lookup = lookup })
  dns.lookup = ((hostname: string, ...rest: unknown[]) => {
    if (hostname !== 'localhost') return Reflect.apply(lookup, dns, [hostname, ...rest])
    const callback = rest.at(-1) as (err: null, ...answer: unknown[]) => void
    if ((rest[0] as { all?: boolean }).all === true) callback(null, [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }])
    else callback(null, '127.0.0.1', 4)
  }) as typeof dns.lookup
  const { app, lines } = loggedApp()
  await app.register(gracefulTermination, { handleSignals: false })
  t.teardown(() => app.close())
  await app.listen({ host: 'localhost', port: 0 })
  const addresses = app.addresses()
  t.same(addresses.map(address => typeof address === 'string' ? address : address.address).sort(), ['127.0.0.1', '::1'], 'Fastify listens on both')
  t.equal(extraServers(app).length, addresses.length - 1, 'one server found for each address but the main one')
  t.same(addressesNotWatched(app, [app.server, ...extraServers(app)]), [], 'every address Fastify reports has its server')
  t.same(lines.filter(line => line.level === 50), [], 'no error logged')
})

t.test('an address whose server the plugin cannot find is logged as an error that names it', async t => {
  const { app, lines } = loggedApp()
  await app.register(gracefulTermination, { handleSignals: false })
  t.teardown(() => app.close())
  // What a Fastify release that keeps its extra servers under another symbol looks like: it
  // reports an address (through the public addresses()) that none of the servers found has.
  const addresses = app.addresses.bind(app)
  app.addresses = () => [...addresses(), { address: '::1', family: 'IPv6', port: 1 }]
  await app.listen({ host: '127.0.0.1', port: 0 })
  const errors = lines.filter(line => line.level === 50)
  t.equal(errors.length, 1, 'one error')
  t.same(errors[0]?.addresses, ['[::1]:1'], 'it names the address')
  t.match(errors[0]?.msg, /cannot find/)
})

t.test('addressesNotWatched: an address of a server not given is reported, a pipe is not', async t => {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as net.AddressInfo
  const fastify = (listed: Array<string | net.AddressInfo>): Pick<FastifyInstance, 'addresses'> =>
    ({ addresses: () => listed as net.AddressInfo[] })
  t.same(addressesNotWatched(fastify([{ address: '127.0.0.1', family: 'IPv4', port }]), [server]), [])
  t.same(addressesNotWatched(fastify([{ address: '127.0.0.1', family: 'IPv4', port: port + 1 }]), [server]), [`127.0.0.1:${port + 1}`])
  t.same(addressesNotWatched(fastify(['/tmp/app.sock']), []), [], 'a pipe is the main server')
})

t.test("Node: a TLS socket's _parent is the TCP socket the server accepted", async t => {
  const server = https.createServer({ key: tls('key.pem'), cert: tls('cert.pem') }, (request, response) => {
    response.end(String((request.socket as net.Socket & { _parent?: net.Socket })._parent === accepted))
  })
  let accepted: net.Socket | undefined
  server.on('connection', (socket: net.Socket) => { accepted = socket })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as net.AddressInfo
  const body = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, ca: tls('cert.pem'), agent: false, servername: 'localhost' }, response => {
      let text = ''
      response.setEncoding('utf8').on('data', chunk => { text += chunk }).on('end', () => resolve(text))
    }).on('error', reject)
  })
  t.equal(body, 'true', 'request.socket._parent is the accepted socket')
})

t.test("Node: a response's shouldKeepAlive = false, set before its headers, sends Connection: close and ends the connection", async t => {
  const server = http.createServer((_request, response) => {
    response.shouldKeepAlive = false
    response.end('last')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as net.AddressInfo
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
  let received = ''
  socket.setEncoding('utf8').on('data', chunk => { received += chunk })
  await once(socket, 'end')
  t.match(received, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(received, /\r\nConnection: close\r\n/i, 'Connection: close sent')
  t.match(received, /\r\n\r\nlast$/, 'then the body, then the server ended the connection')
  socket.destroy()
})

t.test('the fixtures use no deprecated Fastify option: started and stopped, they warn of nothing', async t => {
  for (const [fixture, env] of [['app.ts', {}], ['service.ts', { GRACEFUL: '1' }], ['service.ts', { GRACEFUL: '1', LOG_REQUESTS: '1' }]] as const) {
    const app = await startNodeApp(t, fixtureArgs(fixture), env)
    app.kill('SIGTERM')
    const exit = await app.exited
    t.equal(exit.code, 0, `${fixture} ${JSON.stringify(env)} exits 0`)
    t.notMatch(app.stderr.join(''), /Warning|FSTDEP/, `${fixture} ${JSON.stringify(env)} warned of nothing`)
  }
})
