#!/usr/bin/env node
// The "null" remote network driver of bench/single-host.ts: the floor any Docker network plugin
// can reach on a dockerd. A plain Node HTTP server on a Unix socket, no dependencies, whose
// handlers do no work at all:
//
//  - at start it creates POOL veth pairs `nd<i>h` / `nd<i>c` (host side up) in its own network
//    namespace with one `ip -batch` process, then listens;
//  - CreateEndpoint answers {"Interface":{}} (dockerd keeps the address its IPAM gave);
//  - Join hands out the next container side `nd<i>c` of the pool (round robin; dockerd moves it
//    into the container and back out when the container goes, under its original name) and the
//    network's gateway as recorded at CreateNetwork (as our daemon does: without a Gateway or
//    DisableGatewayService dockerd would attach the container to docker_gwbridge as well);
//  - every other call answers {}.
//
// Usage (inside the lab host, see bench/single-host.ts):
//   node bench/lib/null-driver.mjs /run/docker/plugins/nulldrv.sock [POOL=60]
// Logs one line per call to stdout ({"call","ms"}), nothing else. The veth pairs go with the
// lab host's netns.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';

const socketPath = process.argv[2];
const POOL = Number(process.argv[3] ?? 60);
if (!socketPath || !Number.isInteger(POOL) || POOL < 1) {
  process.stderr.write('usage: null-driver.mjs SOCKET [POOL]\n');
  process.exit(2);
}

const batch = [];
for (let i = 0; i < POOL; i++) batch.push(`link add nd${i}h type veth peer name nd${i}c`, `link set nd${i}h up`);
execFileSync('ip', ['-batch', '-'], { input: `${batch.join('\n')}\n`, stdio: ['pipe', 'inherit', 'inherit'] });

const MEDIA_TYPE = 'application/vnd.docker.plugins.v1+json';
/** NetworkID -> gateway (plain address) from CreateNetwork's IPv4Data. */
const gateways = new Map();
let next = 0;

const handlers = {
  'Plugin.Activate': () => ({ Implements: ['NetworkDriver'] }),
  'NetworkDriver.GetCapabilities': () => ({ Scope: 'local', ConnectivityScope: 'local' }),
  'NetworkDriver.CreateNetwork': (b) => {
    const gw = b?.IPv4Data?.[0]?.Gateway;
    if (typeof gw === 'string' && gw !== '') gateways.set(b.NetworkID, gw.split('/')[0]);
    return {};
  },
  'NetworkDriver.DeleteNetwork': (b) => {
    gateways.delete(b?.NetworkID);
    return {};
  },
  'NetworkDriver.CreateEndpoint': () => ({ Interface: {} }),
  'NetworkDriver.Join': (b) => {
    const i = next;
    next = (next + 1) % POOL;
    const reply = { InterfaceName: { SrcName: `nd${i}c`, DstPrefix: 'eth' } };
    const gw = gateways.get(b?.NetworkID);
    if (gw) reply.Gateway = gw;
    else reply.DisableGatewayService = true;
    return reply;
  },
};
for (const call of [
  'DeleteNetwork',
  'Leave',
  'DeleteEndpoint',
  'EndpointOperInfo',
  'ProgramExternalConnectivity',
  'RevokeExternalConnectivity',
  'DiscoverNew',
  'DiscoverDelete',
]) {
  handlers[`NetworkDriver.${call}`] ??= () => ({});
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const t0 = performance.now();
    const call = (req.url ?? '').replace(/^\//, '');
    const handler = handlers[call];
    let status = 200;
    let reply;
    if (!handler) {
      status = 404;
      reply = { Err: `null driver: unknown call ${call}` };
    } else {
      let body;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        body = undefined;
      }
      reply = handler(body);
    }
    const text = JSON.stringify(reply);
    res.writeHead(status, { 'Content-Type': MEDIA_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    process.stdout.write(`{"call":"${call}","ms":${(performance.now() - t0).toFixed(3)}}\n`);
  });
});
// dockerd keeps connections alive and may reuse one the server just closed (see bench/README.md).
server.keepAliveTimeout = 0;
rmSync(socketPath, { force: true });
server.listen(socketPath, () => process.stdout.write(`null driver listening on ${socketPath}, ${POOL} veth pairs\n`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
process.on('exit', () => rmSync(socketPath, { force: true }));
