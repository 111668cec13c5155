/**
 * abi.ts against the compiled bpf/lxc.bpf.o: every struct, field offset and size, every map's key
 * and value type and every load-time constant must agree with the BTF clang wrote. Then each codec
 * must round-trip.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import * as abi from '../../../src/datapath/bpf/abi.js';
import { defaultLxcObjectPath } from '../../../src/datapath/bpf/programs.js';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: Array<{ name: string; type_id: number; bits_offset: number }>;
  vars?: Array<{ type_id: number; offset: number; size: number }>;
}

function readBtf(): Map<number, BtfType> {
  const json = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', defaultLxcObjectPath], { encoding: 'utf8' });
  const types = (JSON.parse(json) as { types: BtfType[] }).types;
  return new Map(types.map((type) => [type.id, type]));
}

const skip = !existsSync(defaultLxcObjectPath)
  ? `${defaultLxcObjectPath} missing: run scripts/build-bpf.sh`
  : (() => {
      try {
        execFileSync('bpftool', ['version'], { stdio: 'ignore' });
        return undefined;
      } catch {
        return 'bpftool not installed';
      }
    })();

t.test('abi.ts agrees with the BTF of bpf/lxc.bpf.o', { skip }, async (t) => {
  const btf = readBtf();
  const byName = (kind: string, name: string) =>
    [...btf.values()].find((type) => type.kind === kind && type.name === name);
  const sizeOf = (id: number): number => {
    const type = btf.get(id)!;
    if (type.kind === 'TYPEDEF' || type.kind === 'CONST' || type.kind === 'VOLATILE') return sizeOf(type.type_id!);
    if (type.kind === 'ARRAY') return type.nr_elems! * sizeOf(type.type_id!);
    return type.size!;
  };
  const structName = (id: number): string | undefined => {
    const type = btf.get(id)!;
    if (type.kind === 'STRUCT') return type.name;
    if (type.kind === 'TYPEDEF' && btf.get(type.type_id!)?.kind === 'INT') return type.name; // __u32 keys
    return type.type_id === undefined ? undefined : structName(type.type_id);
  };

  for (const [name, layout] of Object.entries(abi.structLayouts)) {
    t.test(`struct ${name}`, async (t) => {
      const struct = byName('STRUCT', name);
      if (!struct) {
        t.fail(`no struct ${name} in the BTF`);
        return;
      }
      t.equal(struct.size, layout.size, 'size');
      t.same(
        struct.members!.map((m) => m.name),
        Object.keys(layout.fields),
        'fields, in order',
      );
      for (const member of struct.members!) {
        const field = (layout.fields as Record<string, abi.FieldLayout>)[member.name];
        t.equal(member.bits_offset % 8, 0, `${member.name} is not a bitfield`);
        t.same(
          { offset: member.bits_offset / 8, size: sizeOf(member.type_id) },
          field,
          `${member.name}: offset and size`,
        );
      }
    });
  }

  t.test('maps use the structs abi.ts encodes for them', async (t) => {
    const expected: Record<string, [string, string] | undefined> = {
      [abi.mapNames.endpoints]: ['endpoint_key', 'endpoint_info'],
      [abi.mapNames.policy]: ['policy_key', 'policy_entry'],
      [abi.mapNames.ipcache]: ['ipcache_key', 'ipcache_entry'],
      [abi.mapNames.ct]: ['ct_key', 'ct_entry'],
      // A per-CPU array: its key is the __u32 index whose bytes are a metrics_key.
      [abi.mapNames.metrics]: ['__u32', 'metrics_value'],
      [abi.mapNames.events]: undefined,
    };
    const maps = byName('DATASEC', '.maps')!;
    const defined = new Map(
      maps.vars!.map((v) => {
        const variable = btf.get(v.type_id)!;
        return [variable.name, btf.get(variable.type_id!)!] as const;
      }),
    );
    t.same([...defined.keys()].sort(), Object.keys(expected).sort(), 'map names');
    for (const [mapName, structs] of Object.entries(expected)) {
      if (!structs) continue;
      const members = defined.get(mapName)!.members!;
      const typeOf = (member: string) => structName(members.find((m) => m.name === member)!.type_id);
      t.same([typeOf('key'), typeOf('value')], structs, `${mapName} key and value`);
    }
  });

  t.test('load-time constants', async (t) => {
    const rodata = byName('DATASEC', '.rodata')!;
    const vars = new Map(rodata.vars!.map((v) => [btf.get(v.type_id)!.name, v.size]));
    for (const { name, size } of Object.values(abi.loadTimeConstants)) t.equal(vars.get(name), size, name);
    t.equal(vars.size, Object.keys(abi.loadTimeConstants).length, 'no constant left out of abi.ts');
  });
});

t.test('codecs round-trip', async (t) => {
  const endpoint: abi.EndpointInfo = {
    ifindex: 42,
    epId: 513,
    identity: 70000,
    netId: 3,
    enforceIngress: true,
    enforceEgress: false,
    mac: '02:00:c6:12:00:02',
    nodeMac: 'fe:ff:ff:ff:ff:01',
  };
  t.same(abi.decodeEndpointInfo(abi.encodeEndpointInfo(endpoint)), endpoint, 'endpoint info');
  t.equal(abi.decodeEndpointKey(abi.encodeEndpointKey('198.18.1.2')), '198.18.1.2', 'endpoint key');
  t.same([...abi.encodeEndpointKey('198.18.1.2').subarray(0, 4)], [198, 18, 1, 2], 'address in network order');

  const policyKey: abi.PolicyKey = {
    epId: 7,
    direction: 'egress',
    peer: 1234,
    protocol: 6,
    dport: 1024,
    portPrefixLen: 6,
  };
  t.same(abi.decodePolicyKey(abi.encodePolicyKey(policyKey)), policyKey, 'policy key with a port block');
  t.equal(
    abi.encodePolicyKey(policyKey).readUInt32LE(0),
    72 + 8 + 6,
    'prefix length: fixed part + protocol + 6 port bits',
  );
  t.equal(
    abi.encodePolicyKey({ ...policyKey, dport: 1030 }).readUInt16BE(14),
    1024,
    'port bits beyond the prefix cleared',
  );
  const anyProtocol = { ...policyKey, protocol: 0, dport: 0, portPrefixLen: 0 };
  t.equal(abi.encodePolicyKey(anyProtocol).readUInt32LE(0), 72, 'any protocol: fixed part only');
  t.same(abi.decodePolicyKey(abi.encodePolicyKey(anyProtocol)), anyProtocol, 'any-protocol key');
  t.throws(
    () => abi.encodePolicyKey({ ...anyProtocol, dport: 80, portPrefixLen: 16 }),
    TypeError,
    'a port without a protocol',
  );
  const value: abi.PolicyValue = { verdict: 'deny', cookie: 0xdeadbeef };
  t.same(abi.decodePolicyValue(abi.encodePolicyValue(value, policyKey)), value, 'policy value');
  t.equal(abi.encodePolicyValue(value, policyKey)[1], 14, 'value carries the L4 prefix length');

  t.equal(
    abi.decodeIpcacheKey(abi.encodeIpcacheKey('198.18.7.9/24')),
    '198.18.7.0/24',
    'ipcache key: host bits cleared',
  );
  t.equal(abi.decodeIpcacheKey(abi.encodeIpcacheKey('198.18.7.9')), '198.18.7.9/32', 'bare address is /32');
  t.equal(abi.encodeIpcacheKey('0.0.0.0/0').readUInt32LE(0), 32, 'default route: metadata bits only');
  t.same(
    abi.decodeIpcacheEntry(abi.encodeIpcacheEntry({ identity: 5, netId: 0 })),
    { identity: 5, netId: 0 },
    'untunnelled',
  );
  const tunnelled = { identity: 9, netId: 2, tunnelEndpoint: '198.19.0.1' };
  t.same(abi.decodeIpcacheEntry(abi.encodeIpcacheEntry(tunnelled)), tunnelled, 'tunnelled');
  const viaGateway = { ...tunnelled, tunnelNexthop: '198.19.0.254' };
  t.same(
    abi.decodeIpcacheEntry(abi.encodeIpcacheEntry(viaGateway)),
    viaGateway,
    'tunnelled through an underlay gateway',
  );
  t.equal(
    abi.encodeIpcacheEntry(viaGateway).readUInt32BE(12),
    0xc61300fe,
    'next hop in network byte order after net_id',
  );
  const viaDevice = { ...tunnelled, tunnelNexthop: 'device' };
  t.same(abi.decodeIpcacheEntry(abi.encodeIpcacheEntry(viaDevice)), viaDevice, 'tunnelled through the tunnel device');
  t.equal(abi.encodeIpcacheEntry(viaDevice).readUInt32BE(12), 0xffffffff, "the tunnel device's marker is all ones");
  t.throws(() => abi.encodeIpcacheKey('198.18.0.0/33'), TypeError);
  t.throws(() => abi.encodeEndpointKey('198.18.0.256'), TypeError);

  const ctKey: abi.CtKey = { saddr: '198.18.1.2', daddr: '198.18.1.3', sport: 40000, dport: 80, protocol: 6 };
  t.same(abi.decodeCtKey(abi.encodeCtKey(ctKey)), ctKey, 'ct key');
  const ctEntry: abi.CtEntry = {
    packetsFwd: 3n,
    bytesFwd: 200n,
    packetsRev: 2n,
    bytesRev: 150n,
    created: 100,
    expires: 21700,
    srcIdentity: 70000,
    tcpFlagsFwd: 0x12,
    tcpFlagsRev: 0x12,
    replySeen: true,
    closing: false,
    denied: true,
  };
  t.same(abi.decodeCtEntry(abi.encodeCtEntry(ctEntry)), ctEntry, 'ct entry');

  const metricsKey: abi.MetricsKey = { reason: abi.DropReason.Policy, direction: 'egress' };
  t.same(abi.decodeMetricsKey(abi.encodeMetricsKey(metricsKey)), metricsKey, 'metrics key');
  const perCpu = Buffer.alloc(32);
  perCpu.writeBigUInt64LE(1n, 0);
  perCpu.writeBigUInt64LE(100n, 8);
  perCpu.writeBigUInt64LE(2n, 16);
  perCpu.writeBigUInt64LE(50n, 24);
  t.same(abi.decodePerCpuMetricsValue(perCpu), { packets: 3n, bytes: 150n }, 'per-CPU values summed');

  t.same(
    abi.encodeLoadTimeConstants({ ctLifetimeTcp: 300, traceNotify: true }),
    {
      cfg_ct_lifetime_tcp: Buffer.from([44, 1, 0, 0]),
      cfg_trace_notify: Buffer.from([1]),
    },
    'load-time constants',
  );
});

t.test('decodeEvent reads a drop record', async (t) => {
  const L = abi.structLayouts.event.fields;
  const record = Buffer.alloc(abi.structLayouts.event.size);
  record.writeUInt8(1, L.type.offset);
  record.writeUInt8(abi.DropReason.Policy, L.subtype.offset);
  record.writeUInt16LE(12, L.ep_id.offset);
  record.writeUInt32LE(70001, L.src_identity.offset);
  record.writeUInt32LE(70002, L.dst_identity.offset);
  Buffer.from([198, 18, 1, 2]).copy(record, L.saddr.offset);
  Buffer.from([198, 18, 1, 3]).copy(record, L.daddr.offset);
  record.writeUInt16BE(8080, L.dport.offset);
  record.writeUInt8(6, L.protocol.offset);
  record.writeUInt8(1, L.direction.offset);
  record.writeUInt32LE(74, L.len_orig.offset);
  record.writeUInt16LE(3, L.len_cap.offset);
  record.write('abc', L.payload.offset);
  const event = abi.decodeEvent(record);
  t.match(event, {
    type: 'drop',
    reason: 133,
    epId: 12,
    srcIdentity: 70001,
    dstIdentity: 70002,
    saddr: '198.18.1.2',
    daddr: '198.18.1.3',
    dport: 8080,
    protocol: 6,
    direction: 'ingress',
    length: 74,
  });
  t.equal(event.payload.toString(), 'abc', 'payload cut to len_cap');
  t.equal(abi.dropReasonName(133), 'Policy denied');
  t.throws(() => abi.decodeEvent(record.subarray(0, 10)), TypeError, 'short record');
});
