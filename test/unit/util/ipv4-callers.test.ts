/**
 * Every place that reads address text goes through util/ipv4.ts, so all of them refuse what it
 * refuses. The former lax parsers accepted a leading zero (`010.0.0.1`: 8.0.0.1 to inet_aton and
 * glibc's resolver, 10.0.0.1 to them) and, some, a prefix length like `/024`; dockerd never sends
 * either (Go's parser refuses them), so each caller now refuses them: the plugin handlers, the
 * flags, the BPF map key encoders, network numbers, the resolv.conf reader, the peer watcher's
 * store keys and the policy CIDR parser.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { PeerWatcher, type RemoteEntry } from '../../../src/cluster/peer-watcher.js';
import { loadConfig } from '../../../src/config/config.js';
import { encodeIpcacheKey, encodeIpcacheEntry, ipv4Bytes } from '../../../src/datapath/bpf/abi.js';
import { networkNumber } from '../../../src/datapath/datapath.js';
import { nameserversOf } from '../../../src/dns/dns-server.js';
import { LocalKvStore } from '../../../src/kvstore/local/local-store.js';
import { parsePrefix } from '../../../src/policy/cidr.js';
import { ConfigError } from '../../../src/util/errors.js';
import { log } from '../../../src/util/log.js';
import { PluginStack } from '../../support/plugin-harness.js';

const quiet = log.child({ component: 'ipv4-callers-test' }, { level: 'silent' });

t.test('plugin: CreateEndpoint, CreateNetwork, RequestAddress and ReleaseAddress refuse leading zeros', async (t) => {
  const stack = await new PluginStack().start();
  t.teardown(() => stack.destroy());
  const network = 'a'.repeat(64);
  const pool = await stack.call('IpamDriver.RequestPool', {
    AddressSpace: 'CiliumLocal',
    Pool: '198.18.50.0/24',
    SubPool: '',
    Options: {},
    V6: false,
  });
  const poolId = String(pool.body.PoolID);
  const gateway = await stack.call('IpamDriver.RequestAddress', {
    PoolID: poolId,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  t.equal(gateway.body.Address, '198.18.50.1/24');
  const createNetwork = (id: string, gw: string) =>
    stack.call('NetworkDriver.CreateNetwork', {
      NetworkID: id,
      Options: {},
      IPv4Data: [{ AddressSpace: 'CiliumLocal', Pool: '198.18.50.0/24', Gateway: gw }],
      IPv6Data: [],
    });

  const zeroGateway = await createNetwork('b'.repeat(64), '198.18.50.01/24');
  t.equal(zeroGateway.status, 400, 'CreateNetwork with gateway 198.18.50.01/24: 400');
  t.match(
    String(zeroGateway.body.Err),
    /^CreateNetwork: IPv4Data\[0\]\.Gateway "198\.18\.50\.01\/24" is not an IPv4 address in CIDR form/,
  );
  const zeroPool = await stack.call('NetworkDriver.CreateNetwork', {
    NetworkID: 'b'.repeat(64),
    Options: {},
    IPv4Data: [{ Pool: '198.18.050.0/24', Gateway: '198.18.50.1/24' }],
    IPv6Data: [],
  });
  t.match(
    String(zeroPool.body.Err),
    /^CreateNetwork: IPv4Data\[0\]\.Pool "198\.18\.050\.0\/24" is not an IPv4 address in CIDR form/,
  );
  t.equal((await createNetwork(network, '198.18.50.1/24')).status, 200, 'the canonical form is accepted');

  const address = await stack.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: null });
  t.equal(address.body.Address, '198.18.50.2/24');
  for (const text of ['198.18.50.02/24', '198.18.050.2/24', '198.18.50.2/024']) {
    const r = await stack.call('NetworkDriver.CreateEndpoint', {
      NetworkID: network,
      EndpointID: 'c'.repeat(64),
      Interface: { Address: text, AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    t.equal(r.status, 400, `CreateEndpoint with ${text}: 400`);
    t.match(
      String(r.body.Err),
      new RegExp(
        `^CreateEndpoint: Interface\\.Address "${text.replaceAll('.', '\\.')}" is not an IPv4 address in CIDR form`,
      ),
      `${text}: names the field`,
    );
  }
  t.notOk(stack.endpoints.getEndpoint('c'.repeat(64)), 'no endpoint from a leading-zero address');

  const staticZero = await stack.call('IpamDriver.RequestAddress', {
    PoolID: poolId,
    Address: '198.18.50.010',
    Options: null,
  });
  t.same(
    staticZero.body,
    { Error: 'RequestAddress: Address "198.18.50.010" is not an IPv4 address' },
    'RequestAddress --ip with a leading zero',
  );
  const releaseZero = await stack.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '198.18.50.02' });
  t.same(
    releaseZero.body,
    { Error: 'ReleaseAddress: Address "198.18.50.02" is not an IPv4 address' },
    'ReleaseAddress with a leading zero is refused, not ignored',
  );
  t.same(
    (await stack.ipam.listAddresses()).map((a) => a.address).sort(),
    ['198.18.50.1', '198.18.50.2'],
    'allocations unchanged',
  );
  const ok = await stack.call('NetworkDriver.CreateEndpoint', {
    NetworkID: network,
    EndpointID: 'c'.repeat(64),
    Interface: { Address: '198.18.50.2/24', AddressIPv6: '', MacAddress: '' },
    Options: {},
  });
  t.equal(ok.status, 200, 'the canonical address is accepted');
});

t.test('flags: --default-pool, --underlay-ip, --dns-address and --dns-upstream refuse leading zeros', async (t) => {
  const refusals: Array<[string[], RegExp]> = [
    [['--default-pool', '010.200.0.0/16'], /^--default-pool: "010\.200\.0\.0\/16" is not an IPv4 CIDR/],
    [['--default-pool', '10.200.0.0/016'], /^--default-pool: "10\.200\.0\.0\/016" is not an IPv4 CIDR/],
    [['--underlay-ip', '198.019.0.1'], /^--underlay-ip: "198\.019\.0\.1" is not an IPv4 address/],
    [['--underlay-ip', ' 198.19.0.1'], /^--underlay-ip: " 198\.19\.0\.1" is not an IPv4 address/],
    [['--dns-address', '198.18.0.053'], /^--dns-address: "198\.18\.0\.053" is not an IPv4 address/],
    [['--dns-upstream', '010.0.0.1:53'], /^--dns-upstream: "010\.0\.0\.1:53" is not an IPv4 address/],
  ];
  for (const [argv, message] of refusals) {
    t.throws(() => loadConfig(argv, {}), ConfigError, `${argv.join(' ')}: a ConfigError`);
    t.throws(() => loadConfig(argv, {}), { message }, `${argv.join(' ')}: says why`);
  }
  t.throws(
    () => loadConfig(['--default-pool', '10.200.1.0/16'], {}),
    { message: /host bits set; the network is 10\.200\.0\.0\/16/ },
    'host bits still named',
  );
  t.doesNotThrow(
    () =>
      loadConfig(
        [
          '--default-pool',
          '10.200.0.0/16',
          '--underlay-ip',
          '198.19.0.1',
          '--dns-address',
          '198.18.0.53',
          '--dns-upstream',
          '198.18.0.1:5353',
        ],
        {},
      ),
    'canonical forms accepted',
  );
});

t.test('BPF map keys and values refuse leading zeros and padded prefix lengths', async (t) => {
  t.throws(() => ipv4Bytes('010.0.0.1'), TypeError);
  t.throws(() => encodeIpcacheKey('198.018.0.0/16'), TypeError);
  t.throws(() => encodeIpcacheKey('198.18.0.0/016'), TypeError);
  t.throws(() => encodeIpcacheKey('198.18.0.0/ 16'), TypeError);
  t.throws(() => encodeIpcacheEntry({ identity: 2, netId: 0, tunnelEndpoint: '198.19.0.01' }), TypeError);
  t.same([...ipv4Bytes('198.18.0.10')], [198, 18, 0, 10]);
  t.same(encodeIpcacheKey('198.18.0.10'), encodeIpcacheKey('198.18.0.10/32'), 'a bare address is a /32');
});

t.test('resolv.conf: a nameserver with a leading zero is not forwarded to', async (t) => {
  t.same(
    nameserversOf('nameserver 010.0.0.1\nnameserver 198.18.0.53 # ok\nnameserver 198.18.0.54#ok\nnameserver ::1\n'),
    ['198.18.0.53', '198.18.0.54'],
  );
});

t.test("peer watcher: another node's keys with leading zeros never reach the ipcache", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-ipv4-callers-'));
  const store = LocalKvStore.open({ path: join(dir, 'kv.db') });
  let kernel: RemoteEntry[] = [];
  const datapath = {
    async syncRemoteEntries(entries: RemoteEntry[]) {
      kernel = [...entries].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
      return { written: entries.length, deleted: 0 };
    },
  };
  const node = (name: string, underlayIp: string) =>
    JSON.stringify({
      name,
      hostname: name,
      bootId: 'b1',
      startedAt: '',
      blocks: [],
      underlayIp,
      tunnel: 'vxlan',
      tunnelPort: 8472,
    });
  await store.put('nodes/v1/b', node('b', '198.19.250.2'));
  await store.put('nodes/v1/c', node('c', '198.019.250.3'));
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.64/26', 'b');
  await store.put('ipam/v1/blocks/198.18.120.0-24/198.18.120.0128/26', 'b');
  await store.put('ipam/v1/blocks/198.018.121.0-24/198.18.121.0/26', 'b');
  await store.put('ip/v1/198.18.120.66', JSON.stringify({ identity: 400, node: 'b', endpoint: 1 }));
  await store.put('ip/v1/198.18.120.067', JSON.stringify({ identity: 401, node: 'b', endpoint: 2 }));
  const watcher = new PeerWatcher({
    store,
    nodeName: 'me',
    datapath,
    networkNumber: () => 7,
    routingMode: 'tunnel',
    log: quiet,
  });
  t.teardown(async () => {
    watcher.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await watcher.start();
  t.same(
    kernel,
    [
      { prefix: '198.18.120.64/26', identity: 2, netId: 7, tunnelEndpoint: '198.19.250.2' },
      { prefix: '198.18.120.66/32', identity: 400, netId: 7, tunnelEndpoint: '198.19.250.2' },
      { prefix: '198.19.250.2/32', identity: 6, netId: 0, tunnelEndpoint: '198.19.250.2' },
    ],
    'only the canonical keys of b; not .067, ' +
      'not the block .0128 nor one in pool 198.018.121.0, not node c at 198.019.250.3',
  );
});

t.test('datapath: network numbers', async (t) => {
  t.equal(networkNumber('198.18.120.0/24'), 0xc6127800);
  t.equal(networkNumber('0.0.0.0/0'), 1, 'never 0 for a subnet');
  t.equal(networkNumber('198.018.120.0/24'), 0, 'a leading zero is no subnet: unknown, not 198.18.120.0');
});

t.test('policy CIDRs (already strict) agree', async (t) => {
  for (const text of ['198.018.0.0/16', '198.18.0.0/015', '198.18.0.1 '])
    t.match(parsePrefix(text, true), { ok: false }, `${text} refused`);
  t.match(parsePrefix('10.0.0.1/8', false), { ok: true, prefix: { family: 4, address: 0x0a000000n, bits: 8 } });
  t.match(
    parsePrefix('::ffff:10.0.0.1/128', false),
    { ok: true, prefix: { family: 6 } },
    'an embedded IPv4 goes through the same parser',
  );
  t.match(parsePrefix('::ffff:010.0.0.1/128', false), { ok: false });
});
