/**
 * Runs the in-repo Consul API server (consul-api-server.ts) as a process of its own, so that an
 * e2e test can start it inside a lab namespace (the shared underlay) where every lab host reaches
 * it, the way they reach the underlay's etcd. Usage:
 * `consul-api-server-main.ts <host> <port> [session-ttl-min-ms]`; prints `listening <address>`
 * once it accepts connections, closes on SIGTERM/SIGINT.
 */
import { ConsulApiServer } from './consul-api-server.js';

const [host, port, ttlMin] = process.argv.slice(2);
if (host === undefined || port === undefined) {
  process.stderr.write('usage: consul-api-server-main <host> <port> [session-ttl-min-ms]\n');
  process.exit(2);
}
const server = await ConsulApiServer.listen({
  host,
  port: Number(port),
  ...(ttlMin !== undefined && { sessionTtlMinMs: Number(ttlMin) }),
});
process.stdout.write(`listening ${server.address}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
