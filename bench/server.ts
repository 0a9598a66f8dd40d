// A server for the benchmarks, run as a child process: the plugin with BENCH_OPTIONS (JSON), one
// small JSON route, no logger (logging would cost more than what is measured). It prints its
// port as one JSON line, and stops on SIGTERM through the plugin's own drain.
import Fastify from 'fastify'
import gracefulTermination from '../lib/index.js'

const app = Fastify({ logger: false })
await app.register(gracefulTermination, JSON.parse(process.env.BENCH_OPTIONS ?? '{}'))
app.get('/hello', async () => ({ message: 'Hello Cerebrium!' }))
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no TCP port')
process.stdout.write(JSON.stringify({ port: address.port }) + '\n')
