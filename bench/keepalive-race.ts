// (4) The HTTP/1.1 keep-alive race: a client writes a request on an idle keep-alive connection at
// the moment the drain ends, when the plugin logs 'drained' or when the last in-flight response
// reaches it. The protocol cannot rule the race out (the request and the server's close cross);
// its size and its form are the server's: answered, lost cleanly (a FIN and no answer, which a
// client may retry), or reset. Each try is a new process; the plugin as it was before connections
// were read before they were closed (BEFORE) and this tree's, tried in turn, on a busy machine.
import { startCpuHog } from '../test/helpers/cpu-hog.js'
import { hasMessage, isIncomingRequest } from '../test/helpers/app-process.js'
import { rawClient } from '../test/helpers/http.js'
import { servers, serviceAt, startService, type Figure } from './common.js'

/** The last commit before idle connections were read, then closed with a FIN. */
const BEFORE = 'b00b48a'
const TRIES = Number(process.env.BENCH_RACE_TRIES ?? 50)
const HELLO = 'POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n'
const PREDICT_BODY = JSON.stringify({ input: 'keep-alive race', ms: 300 })
const PREDICT = `POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${PREDICT_BODY.length}\r\n\r\n${PREDICT_BODY}`

type Timing = 'drained' | 'last response'
/**
 * answered; not sent: the FIN reached the client first, which knows nothing was sent; closed: sent,
 * then a FIN and no answer (never run); reset: sent, then a reset, after a FIN or with none first.
 */
type Outcome = 'answered' | 'not sent' | 'closed' | 'reset after a FIN' | 'reset, no FIN first'
const OUTCOMES: Outcome[] = ['answered', 'not sent', 'closed', 'reset after a FIN', 'reset, no FIN first']

async function oneTry (service: string | undefined, timing: Timing): Promise<Outcome> {
  const app = await startService({ graceful: true, service, logRequests: true })
  const idle = await rawClient(servers, app.port)
  idle.socket.write(HELLO)
  await idle.response(1)
  const inFlight = await rawClient(servers, app.port)
  inFlight.socket.write(PREDICT)
  await app.waitForLog(line => isIncomingRequest(line) && (line.req as { url: string }).url === '/predict')
  app.kill('SIGTERM')

  if (timing === 'drained') await app.waitForLog(hasMessage(/^drained/))
  else await inFlight.response(1)
  // A client whose socket has read the FIN does not write: the socket is no longer writable.
  const sent = idle.socket.writable
  if (sent) idle.socket.write(HELLO)
  const ending = await idle.closed
  await app.exited
  if (idle.responses.length > 1) return 'answered'
  if (!sent) return 'not sent'
  if (ending.error === undefined) return 'closed'
  return ending.fin ? 'reset after a FIN' : 'reset, no FIN first'
}

const summary = (counts: Record<Outcome, number>): string =>
  OUTCOMES.filter(outcome => counts[outcome] > 0).map(outcome => `${counts[outcome]} ${outcome}`).join(', ')

export async function keepAliveRace (): Promise<Figure[]> {
  startCpuHog(servers)
  const versions = [{ name: `before (${BEFORE})`, service: serviceAt(BEFORE) }, { name: 'after', service: undefined }]
  const figures: Figure[] = []
  for (const timing of ['drained', 'last response'] as const) {
    const counts = versions.map(() => Object.fromEntries(OUTCOMES.map(outcome => [outcome, 0])) as Record<Outcome, number>)
    // Side by side: the versions take turns, try by try, so the machine's load weighs on both alike.
    for (let index = 0; index < TRIES; index++) {
      for (const [version, { service }] of versions.entries()) counts[version]![await oneTry(service, timing)]++
    }
    const results = versions.map(({ name }, version) => `${name}: ${summary(counts[version]!)}`)
    console.log(`keep-alive race, write at ${timing}: ${results.join('; ')}`)
    figures.push({
      name: `Keep-alive race: a request written on an idle keep-alive connection as ${timing === 'drained' ? 'the plugin logs "drained"' : 'the last in-flight response arrives'}, ${TRIES} tries, each a new process, CPU hog on every core`,
      result: results.map(result => `**${result.replace(': ', '**: ')}`).join('; '),
      target: '— (comparison)'
    })
  }
  return figures
}
