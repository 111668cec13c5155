/**
 * Real veths for endpoint ids that share their first 11 hex characters: the endpoint manager over
 * the routing datapath gives each its own pair (names, MACs, ifindexes, /32 routes), deleting the
 * second leaves the first's veth and route, and a record whose name now belongs to another link
 * (its recorded ifindex is gone) neither deletes nor adopts that link.
 *
 * Links are made in the caller's network namespace and Node cannot switch its own, so this file
 * runs twice: the outer run (under tap) creates a namespace and re-runs itself inside it with
 * nsenter; the inner run does the test and prints the TAP. The outer run deletes the namespace
 * afterwards, whatever happened. Addresses are in 198.18.0.0/15.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerEmergencyCleanup } from '../../lab/process-registry.js';

const NETNS_ENV = 'CDB_VETH_OWNERSHIP_NETNS';

if (process.env[NETNS_ENV]) await runInside();
else await runOutside();

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function runOutside(): Promise<void> {
  const { default: t } = await import('tap');
  const missing = ['ip', 'nsenter', 'stdbuf'].find(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  const reason =
    process.getuid?.() !== 0 ? 'needs root (network namespaces)' : missing ? `${missing} not installed` : undefined;
  if (reason) {
    if (process.env.CI === 'true') t.fail(`veth ownership test cannot run on CI: ${reason}`);
    else t.test('veth ownership in a network namespace', { skip: reason }, () => {});
    return;
  }
  const netns = `cdv-${process.pid}`;
  ip(['netns', 'add', netns]);
  const remove = (): void => {
    spawnSync('ip', ['netns', 'del', netns]);
  };
  const unregister = registerEmergencyCleanup(remove);
  try {
    const child = spawnSync(
      'nsenter',
      [`--net=/run/netns/${netns}`, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)],
      {
        stdio: 'inherit',
        env: { ...process.env, [NETNS_ENV]: netns },
        timeout: 120_000,
      },
    );
    process.exitCode = child.status ?? 1;
  } finally {
    remove();
    unregister();
  }
}

interface Link {
  ifindex: number;
  ifname: string;
  address: string;
}

function link(name: string): Link | undefined {
  const r = spawnSync('ip', ['-j', 'link', 'show', 'dev', name], { encoding: 'utf8' });
  return r.status === 0 ? (JSON.parse(r.stdout) as Link[])[0] : undefined;
}

function routeDevice(address: string): string | undefined {
  const routes = JSON.parse(ip(['-j', 'route', 'show', `${address}/32`])) as Array<{ dev: string }>;
  return routes[0]?.dev;
}

async function runInside(): Promise<void> {
  const { default: t } = await import('tap');
  const { LocalKvStore } = await import('../../../src/kvstore/local/local-store.js');
  const { IdentityAllocator } = await import('../../../src/identity/allocator.js');
  const { EndpointManager } = await import('../../../src/endpoint/endpoint-manager.js');
  const { RoutingDatapath } = await import('../../../src/datapath/routing-datapath.js');
  const { log } = await import('../../../src/util/log.js');

  t.test('colliding endpoint ids get veths of their own; deletion acts only on its own link', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cd-veth-'));
    const store = LocalKvStore.open({ path: join(dir, 'kvstore.db') });
    const datapath = new RoutingDatapath();
    const endpoints = new EndpointManager({
      store,
      nodeName: 'node-a',
      datapath,
      identities: new IdentityAllocator({ store, nodeName: 'node-a', log }),
      log,
    });
    t.teardown(async () => {
      await endpoints.cleanupDatapath().catch(() => undefined);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await datapath.init();
    const networkId = 'a'.repeat(64);
    await endpoints.createNetwork({
      networkId,
      subnet: '198.18.36.0/24',
      gateway: '198.18.36.1',
      internal: false,
      mtu: 1500,
      options: {},
    });
    const first = `abcdef01234${'5'.repeat(53)}`;
    const second = `abcdef01234${'6'.repeat(53)}`;
    const one = await endpoints.createEndpoint({
      networkId,
      endpointId: first,
      ipv4: '198.18.36.2',
      prefixLength: 24,
      mac: '',
    });
    const two = await endpoints.createEndpoint({
      networkId,
      endpointId: second,
      ipv4: '198.18.36.3',
      prefixLength: 24,
      mac: '',
    });
    await endpoints.join(networkId, first, '/var/run/docker/netns/one');
    await endpoints.join(networkId, second, '/var/run/docker/netns/two');

    t.equal(one.hostIfName, 'lxcabcdef01234', 'the first keeps the usual name');
    t.not(two.hostIfName, one.hostIfName, `the second gets another host-side name (${two.hostIfName})`);
    t.not(two.containerIfName, one.containerIfName, `and another container-side name (${two.containerIfName})`);
    t.not(two.mac, one.mac, 'and another MAC');
    t.not(two.hostIfIndex, one.hostIfIndex, 'and another link');
    t.equal(link(one.hostIfName)?.ifindex, one.hostIfIndex, "the first's link is the one it recorded");
    t.equal(link(two.hostIfName)?.ifindex, two.hostIfIndex, "the second's link is the one it recorded");
    t.equal(link(one.containerIfName)?.address, one.mac, "the first's container side has its MAC");
    t.equal(link(two.containerIfName)?.address, two.mac, "the second's container side has its MAC");
    t.equal(routeDevice('198.18.36.2'), one.hostIfName, "the first's /32 goes to its veth");
    t.equal(routeDevice('198.18.36.3'), two.hostIfName, "the second's /32 goes to its veth");

    await endpoints.leave(networkId, second);
    await endpoints.deleteEndpoint(networkId, second);
    await datapath.settle();
    t.equal(link(two.hostIfName), undefined, "the second's veth is gone");
    t.equal(link(one.hostIfName)?.ifindex, one.hostIfIndex, "the first's veth is intact (same ifindex)");
    t.equal(link(one.containerIfName)?.ifindex !== undefined, true, "the first's container side is intact");
    t.equal(routeDevice('198.18.36.2'), one.hostIfName, "the first's /32 still goes to its veth");
    t.ok(
      await datapath.endpointLinkExists(endpoints.toDatapathEndpoint(endpoints.getEndpoint(first)!)),
      'the first endpoint still finds its link',
    );

    // A record naming a link that is now another one's (its own ifindex vanished): not its link.
    const stale = { ...endpoints.toDatapathEndpoint(two), hostIfName: one.hostIfName, ipv4: '198.18.36.99' };
    t.notOk(await datapath.endpointLinkExists(stale), "a link with another ifindex is not the stale record's");
    await datapath.removeEndpoint(stale);
    await datapath.settle();
    t.equal(
      link(one.hostIfName)?.ifindex,
      one.hostIfIndex,
      'removing the stale record left the link of that name alone',
    );
    t.equal(routeDevice('198.18.36.2'), one.hostIfName, 'and its route');

    await endpoints.deleteEndpoint(networkId, first);
    await datapath.settle();
    t.equal(link(one.hostIfName), undefined, 'the first endpoint deletes its own veth');
  });
}
