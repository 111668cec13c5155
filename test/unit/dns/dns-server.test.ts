/**
 * The cluster resolver on loopback, over real UDP and TCP sockets: cluster names of the querier's
 * network answer A (any case, `<name>` and `<name>.<network>`), AAAA of a known name is an empty
 * NOERROR, names of another network are not answered, `<unknown>.<network>` is NXDOMAIN, a removed
 * endpoint stops resolving at once, foreign names go to the upstream (a fake one on loopback) or
 * get SERVFAIL when it is silent and REFUSED when there is none; a TCP query is relayed over TCP; malformed packets get
 * FORMERR or nothing and the server keeps answering.
 */
import t, { type Test } from 'tap';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { DnsServer, nameserversOf } from '../../../src/dns/dns-server.js';
import { lookupClusterName, type NamedEndpoint } from '../../../src/dns/cluster-names.js';
import {
  decodeAddresses,
  decodeHeader,
  decodeQuery,
  encodeAnswer,
  encodeQuery,
  QTYPE_A,
  QTYPE_AAAA,
  RCODE,
} from '../../../src/dns/dns-message.js';
import { log } from '../../../src/util/log.js';

// Loopback addresses are the queriers: the resolver knows a container by its source address.
const endpoints: NamedEndpoint[] = [
  { ip: '127.0.0.1', name: 'client', network: 'ovl' },
  { ip: '198.18.7.2', name: 'Web', network: 'ovl' },
  { ip: '198.18.8.2', name: 'db', network: 'other' },
];

async function udpQuery(port: number, message: Buffer, timeoutMs = 3000): Promise<Buffer | undefined> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      socket.on('message', (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      socket.send(message, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

async function tcpQuery(port: number, message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    const framed = Buffer.alloc(2 + message.length);
    framed.writeUInt16BE(message.length, 0);
    message.copy(framed, 2);
    // Split the frame in two writes: the server must reassemble.
    s.write(framed.subarray(0, 3));
    setTimeout(() => s.write(framed.subarray(3)), 20);
  });
}

async function startServer(t: Test, upstreams: string[], list: NamedEndpoint[] = endpoints): Promise<DnsServer> {
  const server = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    upstreams,
    endpoints: () => list,
    ttlSeconds: 5,
    upstreamTimeoutMs: 300,
    log,
  });
  await server.start();
  t.teardown(() => server.stop());
  return server;
}

t.test('lookupClusterName scopes names to the querier network', async (t) => {
  t.same(lookupClusterName(endpoints, '127.0.0.1', 'WEB'), { kind: 'cluster', addresses: ['198.18.7.2'] });
  t.same(lookupClusterName(endpoints, '127.0.0.1', 'web.OVL'), { kind: 'cluster', addresses: ['198.18.7.2'] });
  t.same(lookupClusterName(endpoints, '127.0.0.1', 'db'), { kind: 'foreign' }, 'another network: not ours');
  t.same(lookupClusterName(endpoints, '127.0.0.1', 'db.ovl'), { kind: 'absent' });
  t.same(lookupClusterName(endpoints, '198.18.9.9', 'web'), { kind: 'foreign' }, 'unknown querier');
  // A container on two networks queries from one address (its route to the resolver) but sees both.
  const multi: NamedEndpoint[] = [
    ...endpoints,
    { ip: '198.18.7.9', name: 'both', network: 'ovl', container: 'c1' },
    { ip: '198.18.8.9', name: 'both', network: 'other', container: 'c1' },
  ];
  t.same(
    lookupClusterName(multi, '198.18.7.9', 'db'),
    { kind: 'cluster', addresses: ['198.18.8.2'] },
    "the querier's second network",
  );
  t.same(
    lookupClusterName(multi, '198.18.7.9', 'both'),
    { kind: 'cluster', addresses: ['198.18.7.9', '198.18.8.9'] },
    'a name in two networks: both addresses',
  );
  t.same(lookupClusterName(multi, '198.18.7.9', 'nobody.other'), { kind: 'absent' });
  // Aliases (`--network-alias`) name a container on their network like its name; a shared alias
  // answers every container that has it; an alias on another network is not visible.
  const aliased: NamedEndpoint[] = [
    ...endpoints,
    { ip: '198.18.7.3', name: 'api-1', aliases: ['api', 'f00dcafe1234'], network: 'ovl' },
    { ip: '198.18.7.4', name: 'api-2', aliases: ['API'], network: 'ovl' },
    { ip: '198.18.8.3', name: 'cache', aliases: ['kv'], network: 'other' },
  ];
  t.same(
    lookupClusterName(aliased, '127.0.0.1', 'api'),
    { kind: 'cluster', addresses: ['198.18.7.3', '198.18.7.4'] },
    'a shared alias: both containers',
  );
  t.same(
    lookupClusterName(aliased, '127.0.0.1', 'Api.ovl'),
    { kind: 'cluster', addresses: ['198.18.7.3', '198.18.7.4'] },
    '<alias>.<network>, any case',
  );
  t.same(
    lookupClusterName(aliased, '127.0.0.1', 'f00dcafe1234'),
    { kind: 'cluster', addresses: ['198.18.7.3'] },
    'the short id alias',
  );
  t.same(lookupClusterName(aliased, '127.0.0.1', 'kv'), { kind: 'foreign' }, "another network's alias: not ours");
  t.same(lookupClusterName(aliased, '127.0.0.1', 'kv.ovl'), { kind: 'absent' });
  t.same(
    nameserversOf('# x\nnameserver 198.18.0.53\nnameserver ::1\nnameserver 198.18.0.1 # us\nsearch a\n', [
      '198.18.0.1',
    ]),
    ['198.18.0.53'],
  );
});

t.test('cluster names over UDP and TCP; AAAA empty; NXDOMAIN; removed names; no upstream -> REFUSED', async (t) => {
  const list = [...endpoints];
  const server = await startServer(t, [], list);
  const a = (await udpQuery(server.port, encodeQuery(11, 'wEb', QTYPE_A)))!;
  t.match(decodeHeader(a), { id: 11, rcode: RCODE.noError, answerCount: 1 });
  t.same(decodeAddresses(a), ['198.18.7.2']);
  // Flags zeroed so the reply parses as a query: its question section is the one sent.
  t.equal(
    decodeQuery(Buffer.concat([a.subarray(0, 2), Buffer.alloc(2), a.subarray(4)]))?.name,
    'wEb',
    'question echoed as sent',
  );
  const tcp = await tcpQuery(server.port, encodeQuery(12, 'web.ovl', QTYPE_A));
  t.same(decodeAddresses(tcp), ['198.18.7.2'], 'TCP, split frame');
  const aaaa = (await udpQuery(server.port, encodeQuery(13, 'web', QTYPE_AAAA)))!;
  t.match(decodeHeader(aaaa), { rcode: RCODE.noError, answerCount: 0 }, 'AAAA of a known name: empty NOERROR');
  t.match(decodeHeader((await udpQuery(server.port, encodeQuery(14, 'nobody.ovl', QTYPE_A)))!), {
    rcode: RCODE.nxDomain,
  });
  t.match(
    decodeHeader((await udpQuery(server.port, encodeQuery(15, 'db', QTYPE_A)))!),
    { rcode: RCODE.refused, answerCount: 0 },
    'other network, no upstream',
  );
  t.match(decodeHeader((await udpQuery(server.port, encodeQuery(16, 'example.org', QTYPE_A)))!), {
    rcode: RCODE.refused,
  });
  list.splice(1, 1);
  t.match(
    decodeHeader((await udpQuery(server.port, encodeQuery(17, 'web.ovl', QTYPE_A)))!),
    { rcode: RCODE.nxDomain },
    'removed: gone at once',
  );
  t.match(server.status(), { queries: 7, clusterAnswers: 3, nxdomain: 2, refused: 2 });
});

t.test('malformed packets: FORMERR when the header decodes, silence otherwise; the server survives', async (t) => {
  const server = await startServer(t, []);
  t.equal(await udpQuery(server.port, Buffer.from([1, 2, 3]), 300), undefined, 'no header: no reply');
  const cut = encodeQuery(21, 'web', QTYPE_A).subarray(0, 14);
  t.match(decodeHeader((await udpQuery(server.port, cut))!), { id: 21, rcode: RCODE.formErr });
  const reply = encodeAnswer(decodeQuery(encodeQuery(22, 'web', QTYPE_A))!, {
    rcode: 0,
    authoritative: true,
    recursionAvailable: false,
  });
  t.equal(await udpQuery(server.port, reply, 300), undefined, 'a response gets no reply');
  const op = encodeQuery(23, 'web', QTYPE_A);
  op.writeUInt16BE(op.readUInt16BE(2) | (2 << 11), 2);
  t.match(decodeHeader((await udpQuery(server.port, op))!), { id: 23, rcode: RCODE.notImp });
  t.same(
    decodeAddresses((await udpQuery(server.port, encodeQuery(24, 'web', QTYPE_A)))!),
    ['198.18.7.2'],
    'still answering',
  );
  t.equal(server.status().malformed, 3);
});

t.test('foreign names go to the upstream; a silent upstream means SERVFAIL', async (t) => {
  const upstream = createSocket('udp4');
  const seen: string[] = [];
  upstream.on('message', (m, r) => {
    const q = decodeQuery(m)!;
    seen.push(q.name);
    upstream.send(
      encodeAnswer(q, {
        rcode: 0,
        authoritative: false,
        recursionAvailable: true,
        addresses: ['198.18.99.1'],
        ttlSeconds: 60,
      }),
      r.port,
      r.address,
    );
  });
  await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  t.teardown(() => silent.close());
  const server = await startServer(t, [`127.0.0.1:${silent.address().port}`, `127.0.0.1:${upstream.address().port}`]);
  const r = (await udpQuery(server.port, encodeQuery(31, 'example.org', QTYPE_A)))!;
  t.same(decodeAddresses(r), ['198.18.99.1'], 'the second upstream answered after the first timed out');
  t.same(seen, ['example.org']);
  t.same(
    decodeAddresses((await udpQuery(server.port, encodeQuery(32, 'web', QTYPE_A)))!),
    ['198.18.7.2'],
    'cluster names are not forwarded',
  );
  t.same(seen, ['example.org']);
  const lonely = await startServer(t, [`127.0.0.1:${silent.address().port}`]);
  t.match(decodeHeader((await udpQuery(lonely.port, encodeQuery(33, 'example.org', QTYPE_A)))!), {
    id: 33,
    rcode: RCODE.servFail,
  });
  t.match(lonely.status(), { upstreamFailures: 1 });
});

t.test('a TCP query is relayed to the upstream over TCP', async (t) => {
  const upstream = createServer((s) => {
    s.once('data', (d: Buffer) => {
      const q = decodeQuery(d.subarray(2, 2 + d.readUInt16BE(0)))!;
      const reply = encodeAnswer(q, {
        rcode: 0,
        authoritative: false,
        recursionAvailable: true,
        addresses: ['198.18.99.2'],
        ttlSeconds: 60,
      });
      const framed = Buffer.alloc(2 + reply.length);
      framed.writeUInt16BE(reply.length, 0);
      reply.copy(framed, 2);
      s.end(framed);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const port = (upstream.address() as { port: number }).port;
  const server = await startServer(t, [`127.0.0.1:${port}`]);
  t.same(decodeAddresses(await tcpQuery(server.port, encodeQuery(41, 'big.example.org', QTYPE_A))), ['198.18.99.2']);
  t.match(server.status(), { forwarded: 1 });
});

t.test('an address that is not on this host fails the start', async (t) => {
  // 198.18.255.254 is assigned nowhere (the lab's addresses are all inside 198.18.0.0/15 but not this one).
  const server = new DnsServer({ host: '198.18.255.254', port: 0, upstreams: [], endpoints: () => [], log });
  await t.rejects(server.start(), { code: 'EADDRNOTAVAIL' });
  await server.stop();
});
