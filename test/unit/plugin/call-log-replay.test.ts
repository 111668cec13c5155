/**
 * Replays the call log dockerd 20.10 really sent (test/fixtures/dockerd-20.10-calllog.jsonl,
 * run1: network create with every IPAM option, container start/stop/restart, network
 * connect/disconnect, rm -f, network rm, then a dockerd restart with restart policies) against
 * the real plugin stack, and checks every reply and that nothing leaks.
 *
 * Pool ids and default-pool subnets differ from the probe that recorded the log, so recorded
 * ids/subnets are translated to ours as the replay learns them.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { PluginStack } from '../../support/plugin-harness.js';

interface LogLine {
  n?: number;
  call?: string;
  req?: Record<string, unknown>;
  resp?: Record<string, unknown> | string;
  status?: number;
  mark?: string;
  file?: string;
}

function loadRun(file: string): LogLine[] {
  const lines = readFileSync(new URL('../../fixtures/dockerd-20.10-calllog.jsonl', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
  const out: LogLine[] = [];
  let inside = false;
  for (const l of lines) {
    if (l.file !== undefined) inside = l.file === file;
    else if (inside) out.push(l);
  }
  return out;
}

/** Endpoint c2 was started with `-p 18080:80`; we refuse port publishing (see README). */
const PUBLISHING_ENDPOINT = '485c0efe81ae';

t.test('replay of dockerd 20.10 run1 (lifecycle + dockerd restart)', async (t) => {
  const stack = await new PluginStack({ defaultPool: '198.18.8.0/21' }).start();
  t.teardown(() => stack.destroy());
  const run = loadRun('run1.jsonl').filter((l) => (l.n ?? 0) <= 132 || l.mark !== undefined);
  // Only run1's first session (calls 1..132): R2 onwards restarts the probe with lost state.
  const session: LogLine[] = [];
  for (const l of run) {
    if (l.mark?.startsWith('R2')) break;
    session.push(l);
  }
  const poolIds = new Map<string, string>(); // recorded PoolID -> ours
  const prefixes = new Map<string, string>(); // recorded "a.b.c." -> ours
  const translate = (text: string): string => {
    let out = text;
    for (const [from, to] of poolIds) out = out.split(from).join(to);
    for (const [from, to] of prefixes) out = out.split(from).join(to);
    return out;
  };
  let refused = false;
  let checked = 0;
  for (const line of session) {
    if (!line.call) continue;
    const recordedOk =
      typeof line.resp === 'object' && line.resp !== null && !('Err' in line.resp) && !('Error' in line.resp);
    const endpointId = (line.req?.EndpointID as string | undefined) ?? '';
    if (endpointId === PUBLISHING_ENDPOINT && refused && line.call !== 'NetworkDriver.EndpointOperInfo') continue;
    const req = line.req === undefined ? undefined : JSON.parse(translate(JSON.stringify(line.req)));
    const reply = await stack.call(line.call, req);
    checked++;
    const label = `#${line.n} ${line.call}`;

    if (line.call === 'NetworkDriver.CreateEndpoint' && endpointId === PUBLISHING_ENDPOINT) {
      t.equal(reply.status, 400, `${label}: -p is refused`);
      t.match(String(reply.body.Err), /publishing ports .* not supported/, `${label}: says why`);
      refused = true;
      // dockerd then releases the address it had requested.
      const rel = await stack.call('IpamDriver.ReleaseAddress', {
        PoolID: translate('probe-probeLocal-198.18.10.0/24'),
        Address: translate('198.18.10.50'),
      });
      t.equal(rel.status, 200);
      continue;
    }
    t.ok(recordedOk, `${label}: recorded as success`);
    t.equal(reply.status, 200, `${label}: HTTP 200 (${reply.raw.slice(0, 160)})`);
    t.notOk('Err' in reply.body || 'Error' in reply.body, `${label}: no error key`);

    switch (line.call) {
      case 'Plugin.Activate':
        t.same(reply.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
        break;
      case 'NetworkDriver.GetCapabilities':
        t.same(reply.body, { Scope: 'local', ConnectivityScope: 'local' });
        break;
      case 'IpamDriver.GetCapabilities':
        t.same(reply.body, { RequiresMACAddress: false, RequiresRequestReplay: false });
        break;
      case 'IpamDriver.RequestPool': {
        const recorded = line.resp as { PoolID: string; Pool: string };
        t.type(reply.body.PoolID, 'string');
        t.notMatch(String(reply.body.PoolID), /\//, 'PoolID has no slash');
        poolIds.set(recorded.PoolID, String(reply.body.PoolID));
        const recPrefix = `${recorded.Pool.split('.').slice(0, 3).join('.')}.`;
        const ourPrefix = `${String(reply.body.Pool).split('.').slice(0, 3).join('.')}.`;
        if (recPrefix !== ourPrefix) prefixes.set(recPrefix, ourPrefix);
        if ((line.req?.Pool as string) !== '')
          t.equal(reply.body.Pool, line.req?.Pool, `${label}: the requested subnet`);
        else
          t.match(
            String(reply.body.Pool),
            /^198\.18\.(8|9|10|11|12|13|14|15)\.0\/24$/,
            `${label}: carved from the default pool`,
          );
        break;
      }
      case 'IpamDriver.RequestAddress':
        t.equal(
          reply.body.Address,
          translate(String((line.resp as { Address: string }).Address)),
          `${label}: same address as dockerd saw`,
        );
        t.same(reply.body.Data, {});
        break;
      case 'NetworkDriver.CreateEndpoint': {
        const requested = (line.req!.Interface as { MacAddress: string }).MacAddress;
        if (requested === '')
          t.match(
            reply.body,
            { Interface: { MacAddress: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/ } },
            `${label}: fills in the MAC`,
          );
        else t.same(reply.body, {}, `${label}: does not touch a requested MAC`);
        break;
      }
      case 'NetworkDriver.Join': {
        const ep = stack.endpoints.getEndpoint(endpointId);
        t.ok(ep, `${label}: endpoint exists`);
        const internal = stack.endpoints.getNetwork(String(line.req?.NetworkID))?.internal;
        t.equal((reply.body.InterfaceName as { SrcName: string }).SrcName, `tmp${endpointId.slice(0, 11)}`);
        t.equal((reply.body.InterfaceName as { DstPrefix: string }).DstPrefix, 'eth');
        if (internal)
          t.same(
            { g: reply.body.Gateway, d: reply.body.DisableGatewayService },
            { g: undefined, d: true },
            `${label}: internal network has no gateway`,
          );
        else
          t.equal(
            reply.body.Gateway,
            translate(String((line.resp as { Gateway: string }).Gateway)),
            `${label}: gateway`,
          );
        break;
      }
      case 'NetworkDriver.EndpointOperInfo':
        t.type(reply.body.Value, 'object');
        break;
    }
  }
  t.ok(checked > 120, `replayed ${checked} calls`);

  // After the session: c1 (restarted by policy) and c2 are running on n1; nothing else is held.
  const eps = stack.endpoints.listEndpoints();
  t.same(
    eps.map((e) => e.endpointId).sort(),
    ['3c266ed3d79a', 'b42b76e0c21c'],
    'only the two running endpoints remain',
  );
  t.same(eps.map((e) => e.ipv4).sort(), ['198.18.10.2', '198.18.10.3']);
  t.equal(stack.datapath.links.size, 2, 'only their veths remain');
  const addrs = await stack.ipam.listAddresses();
  t.same(
    addrs.map((a) => a.address).sort(),
    ['198.18.10.1', '198.18.10.2', '198.18.10.3'],
    'gateway + two containers allocated, nothing leaked',
  );
  t.equal((await stack.ipam.listPools()).length, 1, 'only n1 (re-created in R1) has a pool');

  // Daemon restart: the same allocations come back exactly.
  await stack.stop();
  const again = await new PluginStack({
    dir: stack.dir,
    datapath: stack.datapath,
    defaultPool: '198.18.8.0/21',
  }).start();
  t.teardown(() => again.stop().catch(() => undefined));
  t.same(
    (await again.ipam.listAddresses()).map((a) => a.address).sort(),
    ['198.18.10.1', '198.18.10.2', '198.18.10.3'],
    'allocations survive a restart',
  );
  t.same(
    again.endpoints
      .listEndpoints()
      .map((e) => e.endpointId)
      .sort(),
    ['3c266ed3d79a', 'b42b76e0c21c'],
    'endpoints restored',
  );
  const next = await again.call('IpamDriver.RequestAddress', {
    PoolID: [...poolIds.values()][0],
    Address: '',
    Options: null,
  });
  t.equal(next.body.Address, '198.18.10.4/24', 'the next address continues after the restored ones');
});
