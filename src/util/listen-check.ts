/**
 * Pre-flight check of the addresses the daemon will listen on: each one is bound and released
 * before anything on the host is changed, so an address of no interface, a port in use or two
 * options on one port fail the start with the option's name instead of half-way through it.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { ConfigError } from './errors.js';

/** One address the daemon will listen on, and the option that sets it. */
export interface ListenAddress {
  /** The flag, for messages: `--metrics-address`. */
  option: string;
  host: string;
  port: number;
  protocols: ReadonlyArray<'tcp' | 'udp'>;
}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'the port is in use',
  EADDRNOTAVAIL: 'not an address of this host',
  EACCES: 'permission denied',
};

function bindTcp(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

function bindUdp(host: string, port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind({ address: host, port, exclusive: true }, () => resolve(socket));
  });
}

/**
 * Binds every address at once (so that two options sharing a port collide here as well), then
 * releases them all. Throws ConfigError naming the option, the address and the reason.
 */
export async function checkListenAddresses(addresses: readonly ListenAddress[]): Promise<void> {
  const held: Array<Server | UdpSocket> = [];
  try {
    for (const a of addresses) {
      for (const protocol of a.protocols) {
        try {
          held.push(protocol === 'tcp' ? await bindTcp(a.host, a.port) : await bindUdp(a.host, a.port));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? '';
          const reason = REASONS[code] ?? (err as Error).message;
          throw new ConfigError(
            `${a.option} ${a.host}:${a.port}: cannot listen on ${protocol.toUpperCase()} (${reason}); ` +
              `give an address of this host whose port is free, or leave ${a.option} empty`,
            { cause: err },
          );
        }
      }
    }
  } finally {
    await Promise.all(held.map((h) => new Promise<void>((resolve) => h.close(() => resolve()))));
  }
}
