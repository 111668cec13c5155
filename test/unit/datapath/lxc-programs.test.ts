/**
 * bpf/lxc.bpf.o decision by decision, without a network: each case writes the maps, runs
 * from_container or to_container once on a crafted frame (BPF_PROG_TEST_RUN) and checks the
 * verdict, the rewritten frame, the events and the counters. A test run's skb comes from the
 * loopback device, so the endpoint under test has ifindex 1.
 */
import t, { type Test } from 'tap';
import * as abi from '../../../src/datapath/bpf/abi.js';
import { EventReader } from '../../../src/datapath/bpf/events.js';
import { dropIncompatiblePins, loadLxcDatapath, type LxcDatapath } from '../../../src/datapath/bpf/programs.js';
import { bpfNative } from '../../../src/datapath/bpf/native.js';
import { MapType } from '../../../src/datapath/bpf/bpf-map.js';
import { arpRequest, ipv4Packet, TCP_ACK, TCP_SYN, type Ipv4Spec } from './fixtures/packets.js';
import { bpfSkipReason, pinRoot } from './fixtures/bpf-sandbox.js';

const skip = bpfSkipReason();

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const LOOPBACK_IFINDEX = 1;

const A: abi.EndpointInfo & { ip: string } = {
  ip: '198.18.1.2',
  ifindex: LOOPBACK_IFINDEX,
  epId: 11,
  identity: 1001,
  netId: 1,
  enforceIngress: false,
  enforceEgress: false,
  mac: '02:00:00:00:00:0a',
  nodeMac: '02:00:00:00:01:0a',
};
const B: abi.EndpointInfo & { ip: string } = {
  ip: '198.18.1.3',
  ifindex: 4242,
  epId: 12,
  identity: 1002,
  netId: 1,
  enforceIngress: false,
  enforceEgress: false,
  mac: '02:00:00:00:00:0b',
  nodeMac: '02:00:00:00:01:0b',
};
const REMOTE = { ip: '198.19.5.5', identity: 2001 };

/** A loaded datapath in a private pin root, with A and B registered and every event recorded. */
async function setup(t: Test, endpoints: { a?: Partial<abi.EndpointInfo>; b?: Partial<abi.EndpointInfo> } = {}) {
  const dp: LxcDatapath = await loadLxcDatapath({
    pinRoot: pinRoot(t),
    maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 },
  });
  t.teardown(() => dp.close());
  const events: abi.DatapathEvent[] = [];
  const reader = new EventReader(dp.events, (e) => events.push(e));
  t.teardown(() => reader.close());
  const { ip: ipA, ...a } = { ...A, ...endpoints.a };
  const { ip: ipB, ...b } = { ...B, ...endpoints.b };
  await dp.endpoints.setMany([
    [ipA, a],
    [ipB, b],
  ]);
  await dp.ipcache.setMany([[`${REMOTE.ip}/32`, { identity: REMOTE.identity, netId: 0 }]]);
  /** Events that arrived for this run (waits for the reader to catch up). */
  const eventsOf = async (count: number) => {
    for (let i = 0; i < 500 && events.length < count; i++) await new Promise((r) => setTimeout(r, 10));
    return events.splice(0, events.length);
  };
  const fromA = (spec: Partial<Ipv4Spec>) =>
    dp.fromContainer.testRun(
      ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: REMOTE.ip, protocol: 'tcp', ...spec }),
    );
  const toA = (spec: Partial<Ipv4Spec>) =>
    dp.toContainer.testRun(
      ipv4Packet({ srcMac: A.nodeMac, dstMac: A.mac, saddr: REMOTE.ip, daddr: A.ip, protocol: 'tcp', ...spec }),
    );
  return { dp, eventsOf, fromA, toA };
}

const allowEgress = (peer: number, protocol = 0, dport = 0, portPrefixLen = protocol && dport ? 16 : 0) => ({
  direction: 'egress' as const,
  peer,
  protocol,
  dport,
  portPrefixLen,
  verdict: 'allow' as const,
  cookie: 7000 + peer,
});

t.test('unenforced egress: forwarded to the stack, conntrack entry created, counted', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t);
  t.equal(fromA({ sport: 40001 }).retval, TC_ACT_OK);
  const ct = await dp.ct.list();
  t.match(ct, [
    [
      { saddr: A.ip, daddr: REMOTE.ip, sport: 40001, dport: 80, protocol: 6 },
      { srcIdentity: A.identity, packetsFwd: 1n },
    ],
  ]);
  t.match(await dp.metrics.read(), [{ reason: 0, direction: 'egress', packets: 1n }]);
  t.same(await eventsOf(0), [], 'no events for an unenforced, forwarded packet');
});

t.test('enforced egress without entries: dropped with identities in the events', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t, { a: { enforceEgress: true } });
  t.equal(fromA({ sport: 40002 }).retval, TC_ACT_SHOT);
  const events = await eventsOf(2);
  t.match(events, [
    { type: 'policy-verdict', verdict: 'deny', match: 'none', direction: 'egress', epId: A.epId },
    {
      type: 'drop',
      reason: abi.DropReason.Policy,
      srcIdentity: A.identity,
      dstIdentity: REMOTE.identity,
      saddr: A.ip,
      daddr: REMOTE.ip,
      sport: 40002,
      dport: 80,
      protocol: 6,
      epId: A.epId,
    },
  ]);
  t.same(await dp.ct.list(), [], 'no conntrack entry for a dropped connection');
  t.match(await dp.metrics.read(), [{ reason: abi.DropReason.Policy, direction: 'egress', packets: 1n }]);
});

t.test('policy lookup: most specific allow, deny wins, port blocks, wildcards', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t, { a: { enforceEgress: true } });
  const verdict = async (spec: Partial<Ipv4Spec>) => {
    const retval = fromA(spec).retval;
    const event = (await eventsOf(1)).find((e) => e.type === 'policy-verdict') as abi.PolicyVerdictEvent | undefined;
    return { retval, match: event?.match, cookie: event?.cookie };
  };

  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 6, 80)]);
  t.match(
    await verdict({ sport: 41000 }),
    { retval: TC_ACT_OK, match: 'l3-l4', cookie: 7000 + REMOTE.identity },
    'peer + port',
  );
  t.match(await verdict({ sport: 41001, dport: 81 }), { retval: TC_ACT_SHOT, match: 'none' }, 'other port');

  await dp.policy.syncEndpoint(A.epId, [allowEgress(0, 6, 80)]);
  t.match(await verdict({ sport: 41002 }), { retval: TC_ACT_OK, match: 'l4-only' }, 'any peer, port 80');

  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 6)]);
  t.match(await verdict({ sport: 41003, dport: 9999 }), { retval: TC_ACT_OK, match: 'l3-proto' }, 'peer, any TCP port');
  t.match(await verdict({ protocol: 'udp', sport: 41004 }), { retval: TC_ACT_SHOT }, 'not UDP');

  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity)]);
  t.match(await verdict({ protocol: 'icmp', icmpId: 9 }), { retval: TC_ACT_OK, match: 'l3-only' }, 'peer, anything');

  await dp.policy.syncEndpoint(A.epId, [allowEgress(0)]);
  t.match(await verdict({ protocol: 'udp', sport: 41005 }), { retval: TC_ACT_OK, match: 'all' }, 'anything');

  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 6, 1024, 6)]);
  t.match(
    await verdict({ sport: 41006, dport: 2047 }),
    { retval: TC_ACT_OK, match: 'l3-l4' },
    'in the port block 1024/6 (1024-2047)',
  );
  t.match(await verdict({ sport: 41007, dport: 2048 }), { retval: TC_ACT_SHOT }, 'outside the block');

  await dp.policy.syncEndpoint(A.epId, [
    allowEgress(REMOTE.identity, 6, 80),
    { ...allowEgress(0, 6), verdict: 'deny', cookie: 99 },
  ]);
  const denied = fromA({ sport: 41008 }).retval;
  const events = await eventsOf(2);
  t.equal(denied, TC_ACT_SHOT, 'a wildcard deny beats a more specific allow');
  t.match(events, [
    { type: 'policy-verdict', verdict: 'deny', match: 'proto-only', cookie: 99 },
    { type: 'drop', reason: abi.DropReason.PolicyDeny },
  ]);
});

t.test('fragments match L3 entries only', { skip }, async (t) => {
  const { dp, fromA } = await setup(t, { a: { enforceEgress: true } });
  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 6, 80)]);
  t.equal(fromA({ fragment: true }).retval, TC_ACT_SHOT, 'a port rule does not admit fragments');
  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity)]);
  t.equal(fromA({ fragment: true }).retval, TC_ACT_OK, 'an L3 rule does');
});

t.test('conntrack: replies skip policy, new inbound connections do not', { skip }, async (t) => {
  const { dp, eventsOf, fromA, toA } = await setup(t, { a: { enforceIngress: true, enforceEgress: true } });
  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 6, 80)]);
  t.equal(fromA({ sport: 42000 }).retval, TC_ACT_OK, 'SYN out allowed');
  t.equal(toA({ sport: 80, dport: 42000, tcpFlags: TCP_SYN | TCP_ACK }).retval, TC_ACT_OK, 'SYN-ACK back: a reply');
  t.equal(toA({ sport: 5555, dport: 22 }).retval, TC_ACT_SHOT, 'a new inbound connection is policed');
  const [entry] = await dp.ct.list();
  t.match(entry, [
    { sport: 42000 },
    { packetsFwd: 1n, packetsRev: 1n, replySeen: true, tcpFlagsRev: TCP_SYN | TCP_ACK },
  ]);
  t.ok(entry![1].expires - entry![1].created > 60, 'an answered TCP connection gets the established lifetime');

  await dp.policy.syncEndpoint(A.epId, []);
  t.equal(
    fromA({ sport: 42000, tcpFlags: TCP_ACK }).retval,
    TC_ACT_SHOT,
    'policy removed: the established flow is cut',
  );
  const [denied, ...others] = await dp.ct.list();
  t.same(others, [], 'one entry');
  t.match(
    denied,
    [{ sport: 42000 }, { denied: true, packetsFwd: 1n, packetsRev: 1n }],
    'kept and marked denied (not deleted)',
  );
  // A reply in flight must not re-create the entry reversed (the peer's next packets would then
  // be "replies" of it and skip policy): it matches the kept entry, and does not extend it.
  t.equal(toA({ sport: 80, dport: 42000, tcpFlags: TCP_ACK }).retval, TC_ACT_OK, 'a reply in flight passes as a reply');
  const after = await dp.ct.list();
  t.equal(after.length, 1, 'no reversed entry created');
  t.match(
    after[0],
    [{ sport: 42000 }, { denied: true, packetsRev: 1n, expires: denied![1].expires }],
    'the reply neither counts nor extends the denied entry',
  );
  t.equal(fromA({ sport: 42000, tcpFlags: TCP_ACK }).retval, TC_ACT_SHOT, 'the next packet out is still dropped');
  await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 6, 80)]);
  t.equal(fromA({ sport: 42000, tcpFlags: TCP_ACK }).retval, TC_ACT_OK, 'policy back: the flow passes again');
  t.match(await dp.ct.list(), [[{ sport: 42000 }, { denied: false }]], 'and the mark is cleared');
  await dp.ct.deleteWhere(() => true);
  await eventsOf(0);
});

t.test('ICMP echo: the reply matches the request', { skip }, async (t) => {
  const { dp, fromA, toA } = await setup(t, { a: { enforceIngress: true } });
  t.equal(fromA({ protocol: 'icmp', icmpType: 8, icmpId: 300 }).retval, TC_ACT_OK);
  t.equal(toA({ protocol: 'icmp', icmpType: 0, icmpId: 300 }).retval, TC_ACT_OK, 'echo reply passes enforced ingress');
  t.equal(toA({ protocol: 'icmp', icmpType: 8, icmpId: 301 }).retval, TC_ACT_SHOT, 'an echo request does not');
  await dp.ct.deleteWhere(() => true);
});

t.test(
  'ICMP type entries (icmps): protocol 1 with the type as the port; L3 entries still match every type',
  { skip },
  async (t) => {
    const { dp, eventsOf, fromA, toA } = await setup(t, { a: { enforceIngress: true, enforceEgress: true } });
    const verdict = async (run: () => { retval: number }) => {
      const retval = run().retval;
      const event = (await eventsOf(1)).find((e) => e.type === 'policy-verdict') as abi.PolicyVerdictEvent | undefined;
      return { retval, match: event?.match };
    };
    await dp.policy.syncEndpoint(A.epId, [
      allowEgress(REMOTE.identity, 1, 8),
      { ...allowEgress(0, 1, 13), direction: 'ingress' },
    ]);
    t.match(
      await verdict(() => fromA({ protocol: 'icmp', icmpType: 8, icmpId: 400 })),
      { retval: TC_ACT_OK, match: 'l3-l4' },
      'echo request (type 8) allowed to the peer',
    );
    t.equal(
      toA({ protocol: 'icmp', icmpType: 0, icmpId: 400 }).retval,
      TC_ACT_OK,
      'its echo reply passes ingress by conntrack (type 0 is not allowed)',
    );
    t.match(
      await verdict(() => fromA({ protocol: 'icmp', icmpType: 13, icmpId: 401 })),
      { retval: TC_ACT_SHOT, match: 'none' },
      'timestamp request (type 13) egress dropped',
    );
    t.match(
      await verdict(() => fromA({ protocol: 'icmp', icmpType: 3, icmpId: 0 })),
      { retval: TC_ACT_SHOT, match: 'none' },
      'destination unreachable (type 3) egress dropped',
    );
    t.match(
      await verdict(() => toA({ protocol: 'icmp', icmpType: 13, icmpId: 402 })),
      { retval: TC_ACT_OK, match: 'l4-only' },
      'type 13 allowed in from any peer',
    );
    t.equal(toA({ protocol: 'icmp', icmpType: 8, icmpId: 403 }).retval, TC_ACT_SHOT, 'type 8 not allowed in');
    t.equal(fromA({ protocol: 'tcp', dport: 8 }).retval, TC_ACT_SHOT, 'the ICMP entry does not allow TCP port 8');
    await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity, 1)]);
    t.equal(
      fromA({ protocol: 'icmp', icmpType: 13, icmpId: 404 }).retval,
      TC_ACT_OK,
      'protocol-only ICMP entry: every type',
    );
    await dp.policy.syncEndpoint(A.epId, [allowEgress(REMOTE.identity)]);
    t.equal(
      fromA({ protocol: 'icmp', icmpType: 13, icmpId: 405 }).retval,
      TC_ACT_OK,
      'L3-only entry: every type, as before icmps existed',
    );
    await dp.ct.deleteWhere(() => true);
    await eventsOf(0);
  },
);

t.test('local delivery: isolation by network, MAC rewrite, redirect to the peer', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t, { b: { netId: 2 } });
  const toB = () => fromA({ daddr: B.ip, sport: 43000 });
  t.equal(toB().retval, TC_ACT_SHOT, 'other Docker network, no rule: isolated');
  t.match(await eventsOf(1), [
    {
      type: 'drop',
      reason: abi.DropReason.NetworkIsolation,
      epId: B.epId,
      direction: 'ingress',
      srcIdentity: A.identity,
      dstIdentity: B.identity,
    },
  ]);

  await dp.endpoints.setMany([[B.ip, { ...B, netId: 1 }]]);
  const run = toB();
  t.equal(run.retval, TC_ACT_REDIRECT, 'same network: redirected');
  t.same(
    run.packetOut.subarray(0, 12),
    Buffer.concat([abi.macBytes(B.mac), abi.macBytes(B.nodeMac)]),
    'MACs rewritten for B',
  );

  await dp.endpoints.setMany([[B.ip, { ...B, netId: 2, enforceIngress: true }]]);
  await dp.policy.syncEndpoint(B.epId, [{ ...allowEgress(A.identity, 6, 80), direction: 'ingress' }]);
  t.equal(toB().retval, TC_ACT_REDIRECT, "B's rule admits A across networks");
  t.equal(fromA({ daddr: B.ip, sport: 43001, dport: 22 }).retval, TC_ACT_SHOT, 'but only on port 80');
  await eventsOf(0);
});

t.test('source validation', { skip }, async (t) => {
  const { eventsOf, fromA } = await setup(t);
  t.equal(fromA({ saddr: '198.18.1.99' }).retval, TC_ACT_SHOT, 'an address that is not the endpoint');
  t.equal(fromA({ saddr: B.ip }).retval, TC_ACT_SHOT, "another endpoint's address");
  t.equal(fromA({ srcMac: '02:00:00:00:00:99' }).retval, TC_ACT_SHOT, 'a MAC that is not the endpoint');
  t.match(
    (await eventsOf(3)).map((e) => (e as abi.DropEvent).reason),
    [abi.DropReason.InvalidSourceIp, abi.DropReason.InvalidSourceIp, abi.DropReason.InvalidSourceMac],
  );
});

t.test('ARP: any IPv4 target is answered with the lxc MAC', { skip }, async (t) => {
  const { dp } = await setup(t);
  for (const target of ['198.18.1.1', B.ip, '198.18.200.7']) {
    const run = dp.fromContainer.testRun(arpRequest(A.mac, A.ip, target));
    t.equal(run.retval, TC_ACT_REDIRECT, `${target}: answered back out of the veth`);
    const reply = run.packetOut;
    t.same(
      {
        ethDst: abi.macString(reply, 0),
        ethSrc: abi.macString(reply, 6),
        op: reply.readUInt16BE(20),
        sha: abi.macString(reply, 22),
        spa: abi.ipv4String(reply, 28),
        tha: abi.macString(reply, 32),
        tpa: abi.ipv4String(reply, 38),
      },
      { ethDst: A.mac, ethSrc: A.nodeMac, op: 2, sha: A.nodeMac, spa: target, tha: A.mac, tpa: A.ip },
    );
  }
  t.equal(
    dp.fromContainer.testRun(arpRequest(A.mac, '198.18.1.77', '198.18.1.1')).retval,
    TC_ACT_OK,
    'a sender that is not this endpoint is left to the stack',
  );
});

t.test('load-time constants reach the program', { skip }, async (t) => {
  const dp = await loadLxcDatapath({
    pinRoot: pinRoot(t),
    config: { ctLifetimeNonTcp: 5, policyVerdictNotify: false, traceNotify: true },
  });
  t.teardown(() => dp.close());
  const events: abi.DatapathEvent[] = [];
  const reader = new EventReader(dp.events, (e) => events.push(e));
  t.teardown(() => reader.close());
  const { ip, ...a } = A;
  dp.endpoints.set(ip, a);
  dp.fromContainer.testRun(
    ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: REMOTE.ip, protocol: 'udp' }),
  );
  const [[, entry]] = (await dp.ct.list()) as [[abi.CtKey, abi.CtEntry]];
  t.equal(entry.expires - entry.created, 5, 'non-TCP lifetime');
  for (let i = 0; i < 500 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.match(events, [{ type: 'trace', observationPoint: 'to-stack', saddr: A.ip }], 'trace on, verdicts off');
});

t.test(
  'an older pin of cilium_metrics (per-CPU hash) is replaced by the array, other pins are kept',
  { skip },
  async (t) => {
    const root = pinRoot(t);
    const native = bpfNative();
    const oldMetrics = native.mapCreate(MapType.PercpuHash, 4, 16, 1024, 0, 'cilium_metrics');
    native.objPin(oldMetrics, `${root}/cilium_metrics`);
    native.closeFd(oldMetrics);
    const told: string[] = [];
    const first = await loadLxcDatapath({
      pinRoot: root,
      maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 },
      onDroppedPins: (names) => told.push(...names),
    });
    t.same(told, ['cilium_metrics'], 'the loader says which pin it replaced');
    const { ip, ...a } = A;
    await first.endpoints.setMany([[ip, a]]);
    first.close();
    t.same(dropIncompatiblePins(root), [], 'after the load nothing is left to replace');
    const dp = await loadLxcDatapath({ pinRoot: root, maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 } });
    t.teardown(() => dp.close());
    t.equal(dp.metrics.map.info.type, MapType.PercpuArray, 'the metrics pin is the per-CPU array now');
    t.equal((await dp.endpoints.list()).length, 1, 'the endpoints pin was reused (its entry survived the reload)');
    const packet = ipv4Packet({
      srcMac: A.mac,
      dstMac: A.nodeMac,
      saddr: A.ip,
      daddr: REMOTE.ip,
      protocol: 'tcp',
      sport: 40100,
    });
    t.equal(dp.fromContainer.testRun(packet).retval, TC_ACT_OK);
    t.same(
      await dp.metrics.read(),
      [{ reason: 0, direction: 'egress', packets: 1n, bytes: BigInt(packet.length) }],
      'counts land in the array; unused indexes are not listed',
    );
  },
);

t.test(
  'conntrack counters off (ctAccounting false): the entry tracks the flow, its counters stay at the first packet',
  { skip },
  async (t) => {
    const dp = await loadLxcDatapath({ pinRoot: pinRoot(t), config: { ctAccounting: false } });
    t.teardown(() => dp.close());
    const { ip, ...a } = A;
    dp.endpoints.set(ip, a);
    await dp.ipcache.setMany([[`${REMOTE.ip}/32`, { identity: REMOTE.identity, netId: 0 }]]);
    const fromA = (tcpFlags: number) =>
      dp.fromContainer.testRun(
        ipv4Packet({
          srcMac: A.mac,
          dstMac: A.nodeMac,
          saddr: A.ip,
          daddr: REMOTE.ip,
          protocol: 'tcp',
          sport: 40200,
          tcpFlags,
        }),
      );
    const toA = (tcpFlags: number) =>
      dp.toContainer.testRun(
        ipv4Packet({
          srcMac: A.nodeMac,
          dstMac: A.mac,
          saddr: REMOTE.ip,
          daddr: A.ip,
          protocol: 'tcp',
          sport: 80,
          dport: 40200,
          tcpFlags,
        }),
      );
    t.equal(fromA(TCP_SYN).retval, TC_ACT_OK);
    t.equal(toA(TCP_SYN | TCP_ACK).retval, TC_ACT_OK);
    for (let i = 0; i < 3; i++) t.equal(fromA(TCP_ACK).retval, TC_ACT_OK);
    const [[, entry]] = (await dp.ct.list()) as [[abi.CtKey, abi.CtEntry]];
    t.match(
      entry,
      {
        packetsFwd: 1n,
        packetsRev: 0n,
        replySeen: true,
        tcpFlagsRev: TCP_SYN | TCP_ACK,
        tcpFlagsFwd: TCP_SYN | TCP_ACK,
      },
      'state and flags follow the flow; only the creating packet is counted',
    );
  },
);

/** The one's-complement sum of an IPv4 header is 0xffff when its checksum is right. */
function ipv4HeaderSumOk(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

t.test(
  'encapsulation in BPF: outer IPv4/UDP/VXLAN written by from_container, undone by from_underlay',
  { skip },
  async (t) => {
    const underlay = '198.19.0.1';
    const dp = await loadLxcDatapath({
      pinRoot: pinRoot(t),
      maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 },
      config: {
        tunnelIfindex: LOOPBACK_IFINDEX,
        underlayIfindex: LOOPBACK_IFINDEX,
        underlaySaddr: 0xc6130001,
        tunnelPort: 8472,
      },
    });
    t.teardown(() => dp.close());
    const { ip: ipA, ...a } = A;
    const { ip: ipB, ...b } = B;
    await dp.endpoints.setMany([
      [ipA, a],
      [ipB, b],
    ]);
    // Remote containers; the tunnel endpoint is this node's own address so that from_underlay takes the result.
    await dp.ipcache.setMany([
      ['198.18.9.9/32', { identity: 2001, netId: 1, tunnelEndpoint: underlay }],
      ['198.18.9.10/32', { identity: 2002, netId: 1, tunnelEndpoint: underlay, tunnelNexthop: 'device' }],
      // a peer node's own address
      [`${underlay}/32`, { identity: abi.Identity.RemoteNode, netId: 0, tunnelEndpoint: underlay }],
    ]);
    const inner = ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: '198.18.9.9', protocol: 'tcp' });
    const run = dp.fromContainer.testRun(inner);
    t.equal(run.retval, TC_ACT_REDIRECT, 'redirected (to the underlay neighbour)');
    const out = run.packetOut;
    t.equal(out.length, inner.length + 50, 'VXLAN over IPv4 adds 50 bytes');
    t.equal(out.readUInt16BE(12), 0x0800, 'outer Ethernet type IPv4');
    const ip = out.subarray(14, 34);
    t.same(
      {
        verIhl: ip[0],
        totLen: ip.readUInt16BE(2),
        frag: ip.readUInt16BE(6),
        ttl: ip[8],
        proto: ip[9],
        saddr: abi.ipv4String(ip, 12),
        daddr: abi.ipv4String(ip, 16),
      },
      { verIhl: 0x45, totLen: out.length - 14, frag: 0x4000, ttl: 64, proto: 17, saddr: underlay, daddr: underlay },
      'outer IPv4 header',
    );
    t.ok(ipv4HeaderSumOk(ip), 'outer IPv4 checksum is right');
    const udp = out.subarray(34, 42);
    t.equal(udp.readUInt16BE(2), 8472, 'UDP destination: the overlay port');
    t.ok(udp.readUInt16BE(0) >= 0xc000, `UDP source from the flow hash (${udp.readUInt16BE(0)})`);
    t.equal(udp.readUInt16BE(4), out.length - 34, 'UDP length');
    t.equal(udp.readUInt16BE(6), 0, 'no UDP checksum (VXLAN over IPv4)');
    t.equal(out.readUInt32BE(42), 0x08000000, 'VXLAN: the VNI flag');
    t.equal(out.readUInt32BE(46) >>> 8, A.identity, "VNI = the sender's security identity");
    t.same(out.subarray(50), inner, 'the original frame follows, unchanged');

    const viaDevice = dp.fromContainer.testRun(
      ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: '198.18.9.10', protocol: 'tcp' }),
    );
    t.equal(viaDevice.retval, TC_ACT_REDIRECT, 'a peer the underlay device does not reach: to the tunnel device');
    t.equal(viaDevice.packetOut.length, inner.length, 'the tunnel device encapsulates it (no headers added here)');

    // The same packet arriving for local endpoint B: decapsulated, B's MACs, straight into its netns.
    const forB = Buffer.from(out);
    abi.ipv4Bytes(B.ip).copy(forB, 50 + 14 + 16);
    const decap = dp.fromUnderlay.testRun(forB);
    t.equal(decap.retval, TC_ACT_REDIRECT, 'for a local endpoint: decapsulated and redirected');
    t.equal(decap.packetOut.length, inner.length, 'the 50 bytes are gone');
    t.same(decap.packetOut.subarray(0, 12), Buffer.concat([abi.macBytes(B.mac), abi.macBytes(B.nodeMac)]), "B's MACs");
    t.same(decap.packetOut.subarray(14), forB.subarray(64), 'the inner IPv4 packet');
    const ct = (await dp.ct.list()).find(([k]) => k.daddr === B.ip);
    t.equal(ct?.[1].srcIdentity, A.identity, 'conntrack records the VNI as the source identity');

    const notOurs = (what: string, mutate: (p: Buffer) => void) => {
      const p = Buffer.from(forB);
      mutate(p);
      const r = dp.fromUnderlay.testRun(p);
      t.equal(r.retval, TC_ACT_OK, `${what}: passed on`);
      t.same(r.packetOut, p, `${what}: untouched`);
    };
    notOurs('another UDP port', (p) => p.writeUInt16BE(4789, 36));
    notOurs('another destination', (p) => abi.ipv4Bytes('198.19.0.9').copy(p, 30));
    notOurs('a sender that is no peer node (the firewall and the tunnel device decide)', (p) =>
      abi.ipv4Bytes('198.19.0.77').copy(p, 26),
    );
    notOurs('inner packet for no local endpoint (the host: the tunnel device takes it)', (p) =>
      abi.ipv4Bytes('198.18.1.1').copy(p, 80),
    );
    notOurs('a fragment', (p) => p.writeUInt16BE(0x2000, 20));
    notOurs('not VXLAN-flagged', (p) => p.writeUInt32BE(0, 42));
    const arp = arpRequest(A.mac, A.ip, B.ip);
    t.equal(dp.fromUnderlay.testRun(arp).retval, TC_ACT_OK, 'ARP: passed on');
  },
);
