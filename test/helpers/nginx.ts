import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Teardown } from './app-process.js'
import { findBinary, freePort, waitUntilAccepting } from './system.js'

/** The nginx binary, or undefined. Debian puts it in /usr/sbin, not on every user's PATH. */
export const findNginx = (): string | undefined => findBinary('nginx')

export interface NginxOptions {
  /** The replicas, on 127.0.0.1. */
  upstreamPorts: number[]
  /** proxy_next_upstream; nginx's default (`error timeout`) when undefined. */
  nextUpstream?: string
}

export interface Nginx {
  /** The server's port on 127.0.0.1. */
  port: number
  /** What nginx logged (level warn and above): upstream errors and servers it disabled. */
  errorLog (): Promise<string[]>
}

/**
 * nginx OSS in front of replicas, configured as most deployments leave it: round robin, passive
 * health only (a replica is skipped for fail_timeout, 10 s, after max_fails, 1, failed attempt;
 * nothing ever reads /ready), and a pool of keep-alive connections to the replicas.
 *
 * It runs in the foreground as one process (no master, no workers), so it runs the same as root
 * or as any user, and everything it writes goes to its own temporary directory.
 */
export async function startNginx (t: Teardown, binary: string, { upstreamPorts, nextUpstream }: NginxOptions): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'nginx-'))
  const port = await freePort()
  const errorLogPath = join(dir, 'error.log')
  const config = `
daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${errorLogPath} warn;

events {
  # A connection from the client and one to a replica for every request in flight.
  worker_connections 4096;
}

http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};

  upstream replicas {
${upstreamPorts.map(upstreamPort => `    server 127.0.0.1:${upstreamPort};`).join('\n')}
    keepalive 32;
  }

  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://replicas;
      # HTTP/1.1 without Connection: close, so the keepalive pool above is used.
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${nextUpstream === undefined ? '' : `      proxy_next_upstream ${nextUpstream};\n`}    }
  }
}
`
  const configPath = join(dir, 'nginx.conf')
  await writeFile(configPath, config)

  const child = spawn(binary, ['-p', dir, '-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
  const stderr: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk))
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
  })

  const errorLog = async (): Promise<string[]> => (await readFile(errorLogPath, 'utf8').catch(() => '')).split('\n').filter(Boolean)
  try {
    await waitUntilAccepting(port, { attempts: 100, intervalMs: 20 })
  } catch (err) {
    throw new Error(`nginx does not accept connections on ${port} (${child.exitCode === null ? 'running' : `exit code ${child.exitCode}`}): ` +
      `${(err as Error).message}\n${stderr.join('')}${(await errorLog()).join('\n')}`)
  }
  return { port, errorLog }
}
