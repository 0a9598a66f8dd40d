import type { FastifyInstance } from 'fastify'
import type { AddressInfo, Server } from 'node:net'

/** The private symbol under which Fastify keeps the servers it adds, found by its description. */
const SERVER_BINDINGS = 'fastify.serverBindings'

/**
 * The servers Fastify adds for the other addresses of the host it listens on (`localhost` is
 * 127.0.0.1 and ::1). Fastify has no public accessor for them: the root instance keeps them under
 * a private symbol. listeningServersMismatch() tells when that stops holding.
 */
export function extraServers (fastify: FastifyInstance): Server[] {
  const symbol = Object.getOwnPropertySymbols(fastify).find(key => key.description === SERVER_BINDINGS)
  return symbol === undefined ? [] : (fastify as unknown as Record<symbol, Server[]>)[symbol] ?? []
}

const key = ({ address, port }: AddressInfo): string => `${address.includes(':') ? `[${address}]` : address}:${port}`

/**
 * The addresses Fastify says it listens on (the public `fastify.addresses()`) that none of the
 * given servers listens on: each would accept connections the plugin never sees, so the drain
 * could neither stop nor close them. Empty when the private lookup still finds every server.
 */
export function addressesNotWatched (fastify: Pick<FastifyInstance, 'addresses'>, servers: Server[]): string[] {
  const watched = new Set(servers.map(server => server.address()).filter(isAddressInfo).map(key))
  // A pipe or Unix socket is reported as a string: the one server Fastify listens with then.
  const listened: Array<string | AddressInfo> = fastify.addresses()
  return listened.filter(isAddressInfo).map(key).filter(address => !watched.has(address))
}

function isAddressInfo (address: string | AddressInfo | null): address is AddressInfo {
  return address !== null && typeof address === 'object'
}
