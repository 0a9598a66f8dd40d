// (3) Shutdown with 10,000 idle keep-alive connections open: each has had one response and
// waits for its next request, as a load balancer's pool does. SIGTERM must close them all and
// exit 0 in under a second, with no connection reset and no error logged.
import net from 'node:net'
import { once } from 'node:events'
import { round, startService, type Figure } from './common.js'

const CONNECTIONS = 10_000
/** Connections opened at once: more would overflow the listen backlog (511) and wait on SYN retries. */
const BATCH = 250
const REQUEST = 'POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n'

interface Outcome { closedCleanly: number, reset: number }

/** Opens a connection, makes one keep-alive request, and leaves it idle. */
async function idleConnection (port: number, outcome: Outcome): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setEncoding('utf8')
  socket.write(REQUEST)
  const [response] = await once(socket, 'data') as [string]
  if (!response.startsWith('HTTP/1.1 200') || !/connection: keep-alive/i.test(response)) {
    throw new Error(`keep-alive shutdown: unexpected response ${JSON.stringify(response.slice(0, 200))}`)
  }
  socket.on('error', () => { outcome.reset++ })
  socket.on('end', () => { outcome.closedCleanly++ })
  return socket
}

export async function keepAliveShutdown (): Promise<Figure[]> {
  const app = await startService({ graceful: true })
  const outcome: Outcome = { closedCleanly: 0, reset: 0 }
  const sockets: net.Socket[] = []
  try {
    for (let opened = 0; opened < CONNECTIONS; opened += BATCH) {
      sockets.push(...await Promise.all(Array.from({ length: BATCH }, () => idleConnection(app.port, outcome))))
    }
    const closed = Promise.all(sockets.map(socket => once(socket, 'close')))

    const signalledAt = performance.now()
    app.kill('SIGTERM')
    const exit = await app.exited
    const signalToExitMs = exit.at - signalledAt
    await closed
    const errorsLogged = app.logs.filter(line => (line.level ?? 0) >= 50).length
    console.log(`keep-alive shutdown: exit code ${exit.code} after ${signalToExitMs.toFixed(1)} ms; ` +
      `${outcome.closedCleanly} connections closed by the server, ${outcome.reset} reset, ${errorsLogged} errors logged`)

    const clean = exit.code === 0 && outcome.closedCleanly === CONNECTIONS && outcome.reset === 0 && errorsLogged === 0
    return [{
      name: `SIGTERM to exit with ${round(CONNECTIONS)} idle keep-alive connections open`,
      result: `**${round(signalToExitMs)} ms**, exit code ${exit.code}; ${round(outcome.closedCleanly)} connections ` +
        `closed by the server, ${outcome.reset} reset, ${errorsLogged} errors logged`,
      target: '< 1000 ms, no error',
      met: clean && signalToExitMs < 1000
    }]
  } finally {
    for (const socket of sockets) socket.destroy()
  }
}
