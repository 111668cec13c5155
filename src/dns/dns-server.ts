/**
 * The cluster resolver: a DNS server (UDP and TCP on one address) that answers the names of the
 * cluster's containers (see cluster-names.ts) and relays every other query to the upstream
 * servers, byte for byte, over the transport it came on (one upstream at a time, 2 s each, the
 * reply passed back unchanged: a truncated UDP reply makes the client retry over TCP, which is
 * then relayed over TCP). Containers reach it through dockerd's embedded DNS: dockerd answers
 * its own host's container names and forwards the rest to the container's external DNS servers
 * (`dockerd --dns`, `docker run --dns`), which is this server.
 *
 * Answers: A for a cluster name (TTL `ttlSeconds`, small, since containers come and go), an empty
 * NOERROR for its other types (AAAA: the networks are IPv4 only), NXDOMAIN for
 * `<unknown>.<network>`, and for foreign names the upstream's answer, SERVFAIL when every upstream
 * failed, REFUSED when none is configured. A message that is not a query gets FORMERR when its
 * header decodes, nothing otherwise; a non-QUERY opcode gets NOTIMP.
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect, createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { parseIpv4 } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { decodeHeader, decodeQuery, encodeAnswer, encodeHeaderError, QTYPE_A, RCODE } from './dns-message.js';
import { lookupClusterName, type NamedEndpoint } from './cluster-names.js';

/** Dependencies and settings of the server. */
export interface DnsServerOptions {
  /** Listen address (IPv4). */
  host: string;
  /** Listen port (53; 0 picks one, for tests). */
  port: number;
  /** `ip` or `ip:port` of the servers foreign names go to; empty: REFUSED. */
  upstreams: string[];
  /** The cluster's endpoints now (called per query). */
  endpoints(): Iterable<NamedEndpoint>;
  ttlSeconds?: number;
  /** Per-upstream timeout; default 2 s. */
  upstreamTimeoutMs?: number;
  log: Logger;
}

/** `cilium status`: the resolver's state and counters. */
export interface DnsServerStatus {
  address: string;
  upstreams: string[];
  queries: number;
  clusterAnswers: number;
  nxdomain: number;
  forwarded: number;
  upstreamFailures: number;
  refused: number;
  malformed: number;
}

const MAX_TCP_MESSAGE = 65535;
const TCP_IDLE_MS = 10_000;

function splitHostPort(text: string): { host: string; port: number } {
  const m = /^(.*?)(?::(\d+))?$/.exec(text)!;
  return { host: m[1]!, port: m[2] === undefined ? 53 : Number(m[2]) };
}

/** UDP + TCP DNS server answering cluster names. */
export class DnsServer {
  private udp: Socket | undefined;
  private tcp: Server | undefined;
  private readonly tcpClients = new Set<TcpSocket>();
  private readonly counters = {
    queries: 0,
    clusterAnswers: 0,
    nxdomain: 0,
    forwarded: 0,
    upstreamFailures: 0,
    refused: 0,
    malformed: 0,
  };
  private boundPort = 0;

  constructor(private readonly options: DnsServerOptions) {}

  /** The port actually bound (after start). */
  get port(): number {
    return this.boundPort;
  }

  /** Binds UDP, then TCP on the same port. Rejects when either bind fails (address not on this host, port taken). */
  async start(): Promise<void> {
    const udp = createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      void this.answer(msg, rinfo.address).then(
        (reply) => {
          if (reply) udp.send(reply, rinfo.port, rinfo.address);
        },
        (err: unknown) => this.options.log.warn({ err }, 'dns query failed'),
      );
    });
    udp.on('error', (err) => this.options.log.warn({ err }, 'dns udp socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.options.port, this.options.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    this.udp = udp;
    this.boundPort = udp.address().port;
    const tcp = createServer((socket) => this.serveTcp(socket));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(this.boundPort, this.options.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', (err) => this.options.log.warn({ err }, 'dns tcp server error'));
    this.tcp = tcp;
    this.options.log.info(
      { address: `${this.options.host}:${this.boundPort}`, upstreams: this.options.upstreams },
      'cluster DNS resolver listening',
    );
  }

  /** Closes both sockets and every TCP connection. */
  async stop(): Promise<void> {
    this.udp?.close();
    this.udp = undefined;
    for (const c of this.tcpClients) c.destroy();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
    this.tcp = undefined;
  }

  /** State for `cilium status`. */
  status(): DnsServerStatus {
    return {
      address: `${this.options.host}:${this.boundPort || this.options.port}`,
      upstreams: [...this.options.upstreams],
      ...this.counters,
    };
  }

  private serveTcp(socket: TcpSocket): void {
    this.tcpClients.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.tcpClients.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        void this.answer(Buffer.from(msg), socket.remoteAddress?.replace(/^::ffff:/, '') ?? '', 'tcp').then(
          (reply) => {
            if (!reply || socket.destroyed || reply.length > MAX_TCP_MESSAGE) return;
            const framed = Buffer.alloc(2 + reply.length);
            framed.writeUInt16BE(reply.length, 0);
            reply.copy(framed, 2);
            socket.write(framed);
          },
          () => socket.destroy(),
        );
      }
    });
  }

  /** The reply to one message from `sourceIp` (undefined: send nothing). Never throws on bad input. */
  async answer(message: Buffer, sourceIp: string, transport: 'udp' | 'tcp' = 'udp'): Promise<Buffer | undefined> {
    this.counters.queries++;
    const query = decodeQuery(message);
    if (!query) {
      this.counters.malformed++;
      const header = decodeHeader(message);
      // Never answer a response (a reflected packet would bounce between two servers).
      return header && !header.response ? encodeHeaderError(header, RCODE.formErr) : undefined;
    }
    const recursionAvailable = this.options.upstreams.length > 0;
    if (query.header.opcode !== 0)
      return encodeAnswer(query, { rcode: RCODE.notImp, authoritative: false, recursionAvailable });
    const verdict = lookupClusterName(this.options.endpoints(), sourceIp, query.name);
    if (verdict.kind === 'cluster') {
      this.counters.clusterAnswers++;
      const addresses = query.type === QTYPE_A ? verdict.addresses : [];
      return encodeAnswer(query, {
        rcode: RCODE.noError,
        authoritative: true,
        recursionAvailable,
        addresses,
        ttlSeconds: this.options.ttlSeconds ?? 5,
      });
    }
    if (verdict.kind === 'absent') {
      this.counters.nxdomain++;
      return encodeAnswer(query, { rcode: RCODE.nxDomain, authoritative: true, recursionAvailable });
    }
    if (!recursionAvailable) {
      this.counters.refused++;
      return encodeAnswer(query, { rcode: RCODE.refused, authoritative: false, recursionAvailable });
    }
    for (const upstream of this.options.upstreams) {
      const reply = await (transport === 'tcp'
        ? forwardTcp(message, upstream, this.options.upstreamTimeoutMs ?? 2000)
        : this.forward(message, upstream)
      ).catch(() => undefined);
      if (reply && reply.length >= 2 && reply.readUInt16BE(0) === query.header.id) {
        this.counters.forwarded++;
        return reply;
      }
    }
    this.counters.upstreamFailures++;
    return encodeAnswer(query, { rcode: RCODE.servFail, authoritative: false, recursionAvailable });
  }

  /** Sends the query to one upstream from a fresh socket (a random source port) and waits for its reply. */
  private forward(message: Buffer, upstream: string): Promise<Buffer> {
    const { host, port } = splitHostPort(upstream);
    return new Promise((resolve, reject) => {
      const socket = createSocket('udp4');
      let done = false;
      const finish = (err: Error | undefined, reply?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else resolve(reply!);
      };
      const timer = setTimeout(
        () => finish(new Error(`upstream ${upstream} did not answer`)),
        this.options.upstreamTimeoutMs ?? 2000,
      );
      socket.on('error', (err) => finish(err));
      socket.on('message', (reply, rinfo) => {
        if (rinfo.address === host && rinfo.port === port) finish(undefined, reply);
      });
      socket.send(message, port, host);
    });
  }
}

/** One framed query over a fresh TCP connection to the upstream (RFC 1035 4.2.2); the first framed reply. */
function forwardTcp(message: Buffer, upstream: string, timeoutMs: number): Promise<Buffer> {
  const { host, port } = splitHostPort(upstream);
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let received = Buffer.alloc(0);
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`upstream ${upstream} did not answer over TCP`)));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`upstream ${upstream} closed the connection`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        resolve(received.subarray(2, 2 + received.readUInt16BE(0)));
        socket.destroy();
      }
    });
    const framed = Buffer.alloc(2 + message.length);
    framed.writeUInt16BE(message.length, 0);
    message.copy(framed, 2);
    socket.write(framed);
  });
}

/**
 * Nameservers of a resolv.conf text (IPv4 only), minus `exclude` (the resolver's own address: a
 * host whose resolv.conf names it must not forward to itself).
 */
export function nameserversOf(resolvConf: string, exclude: string[] = []): string[] {
  return (
    resolvConf
      .split('\n')
      .map((l) => /^\s*nameserver\s+([^\s#]+)\s*(?:#.*)?$/.exec(l)?.[1])
      // A leading zero (`010.0.0.1`) is octal to glibc: refused rather than read as another server.
      .filter((ip): ip is string => ip !== undefined && parseIpv4(ip) !== undefined && !exclude.includes(ip))
  );
}
