// The command line: parsing is pure and checks every value; resolving reads the Dockerfile and
// cerebrium.toml; the bin exits 2 with a message naming the option and the value.
import t from 'tap'
import { join } from 'node:path'
import { InvalidOptionError, parseArguments, resolveSettings, UsageError } from '../src/index.js'
import { parseDockerfile } from '../src/dockerfile.js'
import { repoRoot, runBin } from './helpers.js'

const settings = (args: string[], cwd = repoRoot) => resolveSettings(parseArguments(args)!, { cwd })

t.test('a bad value or a bad combination throws, naming the option and the value', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['--rate', 'fast', '--', 'node', 's.js'], /option --rate must be .*, received "fast"/],
    [['--route', 'predict', '--', 'node', 's.js'], /option --route must be a method and a path.*, received "predict"/],
    [['--signal', 'SIGNOPE', '--', 'node', 's.js'], /option --signal must be .*, received "SIGNOPE"/],
    [['--grace-period', '30s', '--', 'node', 's.js'], /option --grace-period must be an integer .*, received "30s"/],
    [['--ready-path', 'ready', '--', 'node', 's.js'], /option --ready-path must be a path starting with "\/" or none, received "ready"/],
    [['--url', 'ftp://example.com', '--', 'node', 's.js'], /option --url must be an http:\/\/ or https:\/\/ URL.*, received "ftp:\/\/example.com"/],
    [['--url', 'not a url', '--', 'node', 's.js'], /option --url must be .*, received "not a url"/],
    [['--port', '8000', '--url', 'http://127.0.0.1:8000', '--', 'node', 's.js'], /--port "8000" and --url .* exclude each other/],
    [['--header', 'no colon', '--', 'node', 's.js'], /option --header must be a header as "name: value", received "no colon"/],
    [['--insecure', '--', 'node', 's.js'], /--insecure is for a service that speaks TLS/],
    [['--insecure', '--url', 'http://127.0.0.1:1', '--', 'node', 's.js'], /--insecure is for a service that speaks TLS/],
    [['--engine', 'kubernetes', '--dockerfile', 'Dockerfile'], /option --engine must be docker, podman or auto, received "kubernetes"/],
    [['--engine', 'podman', '--', 'node', 's.js'], /--engine "podman" builds the image from a Dockerfile: give --dockerfile too/],
    [['--engine', 'podman', '--dockerfile', 'Dockerfile', '--url', 'http://127.0.0.1:1'], /--engine "podman" and --url exclude each other/],
    [['--engine', 'docker', '--dockerfile', 'Dockerfile', '--signal', 'SIGINT'], /--engine "docker" and --signal exclude each other: .*STOPSIGNAL/],
    [['--rate', '5'], /no command to run/],
    [['--dockerfile', 'Dockerfile', '--', 'node', 's.js'], /not both/],
    [['node', 's.js'], /unexpected argument "node": the service's command goes after --/],
    [['--frobnicate', '--', 'node', 's.js'], /Unknown option '--frobnicate'/]
  ]
  for (const [args, message] of cases) {
    t.throws(() => parseArguments(args), message, args.join(' '))
  }
  t.throws(() => parseArguments(['--rate=-1', '--', 'x']), InvalidOptionError)
  t.throws(() => parseArguments(['--rate', '-1', '--', 'x']), UsageError)
  t.throws(() => parseArguments(['--']), UsageError)
  t.equal(parseArguments(['--help']), undefined)
})

t.test('parsing reads no file; resolving reads the Dockerfile, and says what is wrong with it', async t => {
  const parsed = parseArguments(['--dockerfile', 'nowhere/Dockerfile'])
  t.equal(parsed?.dockerfile, 'nowhere/Dockerfile', 'a Dockerfile that does not exist parses')
  t.throws(() => resolveSettings(parsed!, { cwd: repoRoot }), /--dockerfile "nowhere\/Dockerfile" cannot be read/)
  const dir = t.testdir({
    'no-cmd': 'FROM node\nRUN true\n',
    'no-expose': 'FROM node\nCMD ["node", "s.js"]\n',
    'bad-signal': 'FROM node\nSTOPSIGNAL SIGNOPE\nCMD ["node", "s.js"]\n'
  })
  t.throws(() => settings(['--dockerfile', 'no-cmd'], dir), /--dockerfile "no-cmd": its last stage has no CMD or ENTRYPOINT/)
  t.throws(() => settings(['--dockerfile', 'no-expose', '--engine', 'podman'], dir), /--dockerfile "no-expose": its last stage EXPOSEs no port/)
  t.throws(() => settings(['--dockerfile', 'bad-signal'], dir), /its STOPSIGNAL "SIGNOPE" is not a signal/)
})

t.test('defaults: grace period from ./cerebrium.toml, else 30 s; timeout the grace period', async t => {
  t.match(settings(['--', 'node', 's.js']), { gracePeriod: 90_000, gracePeriodSource: 'cerebrium.toml', timeout: 90_000, method: 'GET', path: '/', readyPath: '/ready', signal: 'SIGTERM' })
  t.match(settings(['--', 'node', 's.js'], t.testdir({ 'cerebrium.toml': '[cerebrium.scaling]\nresponse_grace_period = 45\n' })), { gracePeriod: 45_000 })
  t.match(settings(['--', 'node', 's.js'], t.testdir({ 'cerebrium.toml': '[cerebrium.scaling]\nreplica_concurrency = 4\n' })), { gracePeriod: 30_000, gracePeriodSource: 'default' })
  t.match(settings(['--', 'node', 's.js'], t.testdir({})), { gracePeriod: 30_000, gracePeriodSource: 'default' })
  t.match(settings(['--grace-period', '5000', '--ready-path', 'none', '--', 'node', 's.js']),
    { gracePeriod: 5000, gracePeriodSource: '--grace-period', timeout: 5000, readyPath: false })
})

t.test('a cerebrium.toml that cannot say a grace period is an error naming the file, the key and the value', async t => {
  const toml = (text: string) => () => settings(['--', 'node', 's.js'], t.testdir({ 'cerebrium.toml': text }))
  t.throws(toml('[cerebrium.scaling]\nresponse_grace_period = 90.0\n'), /cerebrium\.toml: cerebrium\.scaling\.response_grace_period must be a whole number of seconds from 1 to 2147483, received 90\.0/)
  t.throws(toml('[cerebrium.scaling]\nresponse_grace_period = "90"\n'), /must be a whole number of seconds .*, received "90"/)
  t.throws(toml('[cerebrium.scaling]\nresponse_grace_period = 0\n'), /received 0/)
  t.throws(toml('[cerebrium.scaling\n'), /cerebrium\.toml is not valid TOML \(line 1, column \d+\)/)
  t.throws(() => settings(['--', 'node', 's.js'], t.testdir({ 'cerebrium.toml': {} })), /cerebrium\.toml cannot be read: EISDIR/)
  t.match(toml('cerebrium = 3\n')(), { gracePeriodSource: 'default' }, 'a key that is not a table holds no grace period')
})

t.test('with --engine: the container\'s port, the image\'s STOPSIGNAL, and a command that replaces the CMD', async t => {
  const dir = t.testdir({ Dockerfile: 'FROM node\nEXPOSE 8000/tcp 9000\nSTOPSIGNAL 2\nCMD ["node", "s.js"]\n' })
  t.match(settings(['--dockerfile', 'Dockerfile', '--engine', 'auto'], dir), {
    signal: 'SIGINT',
    service: { kind: 'container', engine: 'auto', containerPort: 8000, command: ['node', 's.js'], commandOverride: undefined, context: dir }
  })
  t.match(settings(['--dockerfile', 'Dockerfile', '--engine', 'podman', '--', 'npm', 'start'], dir), {
    service: { kind: 'container', engine: 'podman', command: ['npm', 'start'], commandOverride: ['npm', 'start'] }
  })
  t.match(settings(['--dockerfile', 'Dockerfile'], dir), { signal: 'SIGINT', service: { kind: 'process', cwd: dir, command: ['node', 's.js'] } },
    'without an engine, the CMD runs here, with the same signal')
})

t.test('the Dockerfile\'s run stage: exec form, shell form, ENTRYPOINT with CMD, ENV, STOPSIGNAL', async t => {
  t.match(parseDockerfile('FROM node AS build\nCMD ["npm", "test"]\nFROM node\nENV NODE_ENV=production A="two words"\nENV LEGACY some value\n' +
    'CMD ["node", "server.js"]\n'),
  { command: ['node', 'server.js'], shellForm: false, env: { NODE_ENV: 'production', A: 'two words', LEGACY: 'some value' }, stopSignal: 'SIGTERM', exposedPort: undefined })
  t.match(parseDockerfile('FROM node\nCMD node \\\n  server.js\n'), { command: ['/bin/sh', '-c', /^node\s+server\.js$/], shellForm: true })
  t.match(parseDockerfile('FROM node\nCMD ["node", 3]\n'), { command: ['/bin/sh', '-c', '["node", 3]'], shellForm: true }, 'not an array of strings: shell form, as Docker has it')
  t.match(parseDockerfile('FROM node\nENTRYPOINT ["node"]\nCMD ["server.js"]\n'), { command: ['node', 'server.js'] })
  t.match(parseDockerfile('FROM node\nENTRYPOINT ["node", "server.js"]\n'), { command: ['node', 'server.js'] })
  t.match(parseDockerfile('FROM node\nENTRYPOINT node server.js\nCMD ["ignored"]\n'), { command: ['/bin/sh', '-c', 'node server.js'] })
  t.match(parseDockerfile('FROM node\nSTOPSIGNAL quit\nCMD ["x"]\n'), { stopSignal: 'SIGQUIT' })
  t.throws(() => parseDockerfile('FROM node\nCMD []\n'), /its CMD is empty/)
  t.throws(() => parseDockerfile('FROM node\nSTOPSIGNAL 99\nCMD ["x"]\n'), /its STOPSIGNAL "99" is not a signal/)
})

t.test('headers', async t => {
  t.match(parseArguments(['--header', 'X-Api-Key: secret', '--header', 'accept:text/plain', '--', 'node', 's.js']),
    { headers: { 'x-api-key': 'secret', accept: 'text/plain' } })
})

t.test('the bin: a bad value exits 2 with the message on stderr, nothing started; --help prints the usage', async t => {
  const [badValue, badToml, badCommand] = await Promise.all([
    runBin(t, ['verify', '--connections', '0', '--', 'node', 'never-started.js']),
    runBin(t, ['verify', '--', 'node', 'never-started.js'], { cwd: t.testdir({ 'cerebrium.toml': '[cerebrium.scaling]\nresponse_grace_period = -1\n' }) }),
    runBin(t, ['deploy'])
  ])
  t.equal(badValue.code, 2)
  t.match(badValue.stderr, /^graceful-shutdown-check: option --connections must be an integer from 1 to 10000, received "0"\nRun graceful-shutdown-check verify --help/)
  t.equal(badValue.stdout, '')
  t.equal(badToml.code, 2)
  t.match(badToml.stderr, /cerebrium\.toml: cerebrium\.scaling\.response_grace_period must be .*, received -1/)
  t.equal(badCommand.code, 2)
  t.match(badCommand.stderr, /unknown command "deploy"/)

  const [help, topLevelHelp, nothing] = await Promise.all([runBin(t, ['verify', '--help']), runBin(t, ['--help']), runBin(t, [])])
  for (const [run, code] of [[help, 0], [topLevelHelp, 0], [nothing, 2]] as const) {
    t.equal(run.code, code)
    t.match(run.stdout, /^Usage: graceful-shutdown-check verify \[options\] -- <command\.\.\.>/)
  }
})

t.test('an engine that is not on the PATH fails the run, saying so', async t => {
  const env = { ...process.env, PATH: t.testdir({}) }
  const dockerfile = join(repoRoot, 'Dockerfile')
  const [named, auto] = await Promise.all([
    runBin(t, ['verify', '--dockerfile', dockerfile, '--engine', 'podman'], { env }),
    runBin(t, ['verify', '--dockerfile', dockerfile, '--engine', 'auto'], { env })
  ])
  t.equal(named.code, 1)
  t.match(named.stdout, /FAIL: podman could not be run: spawn podman ENOENT/)
  t.equal(auto.code, 1)
  t.match(auto.stdout, /FAIL: --engine auto: neither docker nor podman is on the PATH with an engine that answers `info`/)
})
