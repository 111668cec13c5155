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
  ip: '198.18.1.2', ifindex: LOOPBACK_IFINDEX, epId: 11, identity: 1001, netId: 1,
  enforceIngress: false, enforceEgress: false, mac: '02:00:00:00:00:0a', nodeMac: '02:00:00:00:01:0a',
};
const B: abi.EndpointInfo & { ip: string } = {
  ip: '198.18.1.3', ifindex: 4242, epId: 12, identity: 1002, netId: 1,
  enforceIngress: false, enforceEgress: false, mac: '02:00:00:00:00:0b', nodeMac: '02:00:00:00:01:0b',
};
const REMOTE = { ip: '198.19.5.5', identity: 2001 };

/** A loaded datapath in a private pin root, with A and B registered and every event recorded. */
async function setup(t: Test, endpoints: { a?: Partial<abi.EndpointInfo>; b?: Partial<abi.EndpointInfo> } = {}) {
  const dp: LxcDatapath = await loadLxcDatapath({ pinRoot: pinRoot(t), maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 } });
  t.teardown(() => dp.close());
  const events: abi.DatapathEvent[] = [];
  const reader = new EventReader(dp.events, (e) => events.push(e));
  t.teardown(() => reader.close());
  const { ip: ipA, ...a } = { ...A, ...endpoints.a };
  const { ip: ipB, ...b } = { ...B, ...endpoints.b };
  await dp.endpoints.setMany([[ipA, a], [ipB, b]]);
  await dp.ipcache.setMany([[`${REMOTE.ip}/32`, { identity: REMOTE.identity, netId: 0 }]]);
  /** Events that arrived for this run (waits for the reader to catch up). */
  const eventsOf = async (count: number) => {
    for (let i = 0; i < 500 && events.length < count; i++) await new Promise((r) => setTimeout(r, 10));
    return events.splice(0, events.length);
  };
  const fromA = (spec: Partial<Ipv4Spec>) =>
    dp.fromContainer.testRun(ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: REMOTE.ip, protocol: 'tcp', ...spec }));
  const toA = (spec: Partial<Ipv4Spec>) =>
    dp.toContainer.testRun(ipv4Packet({ srcMac: A.nodeMac, dstMac: A.mac, saddr: REMOTE.ip, daddr: A.ip, protocol: 'tcp', ...spec }));
  return { dp, eventsOf, fromA, toA };
}

const allowEgress = (peer: number, protocol = 0, dport = 0, portPrefixLen = protocol && dport ? 16 : 0) =>
  ({ direction: 'egress' as const, peer, protocol, dport, portPrefixLen, verdict: 'allow' as const, cookie: 7000 + peer });

t.test('unenforced egress: forwarded to the stack, conntrack entry created, counted', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t);
  t.equal(fromA({ sport: 40001 }).retval, TC_ACT_OK);
  const ct = await dp.ct.list();
  t.match(ct, [[{ saddr: A.ip, daddr: REMOTE.ip, sport: 40001, dport: 80, protocol: 6 }, { srcIdentity: A.identity, packetsFwd: 1n }]]);
  t.match(await dp.metrics.read(), [{ reason: 0, direction: 'egress', packets: 1n }]);
  t.same(await eventsOf(0), [], 'no events for an unenforced, forwarded packet');
});

t.test('enforced egress without entries: dropped with identities in the events', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t, { a: { enforceEgress: true } });
  t.equal(fromA({ sport: 40002 }).retval, TC_ACT_SHOT);
  const events = await eventsOf(2);
  t.match(events, [
    { type: 'policy-verdict', verdict: 'deny', match: 'none', direction: 'egress', epId: A.epId },
    { type: 'drop', reason: abi.DropReason.Policy, srcIdentity: A.identity, dstIdentity: REMOTE.identity, saddr: A.ip, daddr: REMOTE.ip, sport: 40002, dport: 80, protocol: 6, epId: A.epId },
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
  t.match(await verdict({ sport: 41000 }), { retval: TC_ACT_OK, match: 'l3-l4', cookie: 7000 + REMOTE.identity }, 'peer + port');
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
  t.match(await verdict({ sport: 41006, dport: 2047 }), { retval: TC_ACT_OK, match: 'l3-l4' }, 'in the port block 1024/6 (1024-2047)');
  t.match(await verdict({ sport: 41007, dport: 2048 }), { retval: TC_ACT_SHOT }, 'outside the block');

  await dp.policy.syncEndpoint(A.epId, [
    allowEgress(REMOTE.identity, 6, 80),
    { ...allowEgress(0, 6), verdict: 'deny', cookie: 99 },
  ]);
  const denied = fromA({ sport: 41008 }).retval;
  const events = await eventsOf(2);
  t.equal(denied, TC_ACT_SHOT, 'a wildcard deny beats a more specific allow');
  t.match(events, [{ type: 'policy-verdict', verdict: 'deny', match: 'proto-only', cookie: 99 }, { type: 'drop', reason: abi.DropReason.PolicyDeny }]);
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
  t.match(entry, [{ sport: 42000 }, { packetsFwd: 1n, packetsRev: 1n, replySeen: true, tcpFlagsRev: TCP_SYN | TCP_ACK }]);
  t.ok(entry![1].expires - entry![1].created > 60, 'an answered TCP connection gets the established lifetime');

  await dp.policy.syncEndpoint(A.epId, []);
  t.equal(fromA({ sport: 42000, tcpFlags: TCP_ACK }).retval, TC_ACT_SHOT, 'policy removed: the established flow is cut');
  const [denied, ...others] = await dp.ct.list();
  t.same(others, [], 'one entry');
  t.match(denied, [{ sport: 42000 }, { denied: true, packetsFwd: 1n, packetsRev: 1n }], 'kept and marked denied (not deleted)');
  // A reply in flight must not re-create the entry reversed (the peer's next packets would then
  // be "replies" of it and skip policy): it matches the kept entry, and does not extend it.
  t.equal(toA({ sport: 80, dport: 42000, tcpFlags: TCP_ACK }).retval, TC_ACT_OK, 'a reply in flight passes as a reply');
  const after = await dp.ct.list();
  t.equal(after.length, 1, 'no reversed entry created');
  t.match(after[0], [{ sport: 42000 }, { denied: true, packetsRev: 1n, expires: denied![1].expires }], 'the reply neither counts nor extends the denied entry');
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

t.test('local delivery: isolation by network, MAC rewrite, redirect to the peer', { skip }, async (t) => {
  const { dp, eventsOf, fromA } = await setup(t, { b: { netId: 2 } });
  const toB = () => fromA({ daddr: B.ip, sport: 43000 });
  t.equal(toB().retval, TC_ACT_SHOT, 'other Docker network, no rule: isolated');
  t.match(await eventsOf(1), [{ type: 'drop', reason: abi.DropReason.NetworkIsolation, epId: B.epId, direction: 'ingress', srcIdentity: A.identity, dstIdentity: B.identity }]);

  await dp.endpoints.setMany([[B.ip, { ...B, netId: 1 }]]);
  const run = toB();
  t.equal(run.retval, TC_ACT_REDIRECT, 'same network: redirected');
  t.same(run.packetOut.subarray(0, 12), Buffer.concat([abi.macBytes(B.mac), abi.macBytes(B.nodeMac)]), 'MACs rewritten for B');

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
  t.match((await eventsOf(3)).map((e) => (e as abi.DropEvent).reason),
    [abi.DropReason.InvalidSourceIp, abi.DropReason.InvalidSourceIp, abi.DropReason.InvalidSourceMac]);
});

t.test('ARP: any IPv4 target is answered with the lxc MAC', { skip }, async (t) => {
  const { dp } = await setup(t);
  for (const target of ['198.18.1.1', B.ip, '198.18.200.7']) {
    const run = dp.fromContainer.testRun(arpRequest(A.mac, A.ip, target));
    t.equal(run.retval, TC_ACT_REDIRECT, `${target}: answered back out of the veth`);
    const reply = run.packetOut;
    t.same({
      ethDst: abi.macString(reply, 0), ethSrc: abi.macString(reply, 6), op: reply.readUInt16BE(20),
      sha: abi.macString(reply, 22), spa: abi.ipv4String(reply, 28), tha: abi.macString(reply, 32), tpa: abi.ipv4String(reply, 38),
    }, { ethDst: A.mac, ethSrc: A.nodeMac, op: 2, sha: A.nodeMac, spa: target, tha: A.mac, tpa: A.ip });
  }
  t.equal(dp.fromContainer.testRun(arpRequest(A.mac, '198.18.1.77', '198.18.1.1')).retval, TC_ACT_OK,
    'a sender that is not this endpoint is left to the stack');
});

t.test('load-time constants reach the program', { skip }, async (t) => {
  const dp = await loadLxcDatapath({ pinRoot: pinRoot(t), config: { ctLifetimeNonTcp: 5, policyVerdictNotify: false, traceNotify: true } });
  t.teardown(() => dp.close());
  const events: abi.DatapathEvent[] = [];
  const reader = new EventReader(dp.events, (e) => events.push(e));
  t.teardown(() => reader.close());
  const { ip, ...a } = A;
  dp.endpoints.set(ip, a);
  dp.fromContainer.testRun(ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: REMOTE.ip, protocol: 'udp' }));
  const [[, entry]] = (await dp.ct.list()) as [[abi.CtKey, abi.CtEntry]];
  t.equal(entry.expires - entry.created, 5, 'non-TCP lifetime');
  for (let i = 0; i < 500 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.match(events, [{ type: 'trace', observationPoint: 'to-stack', saddr: A.ip }], 'trace on, verdicts off');
});

t.test('an older pin of cilium_metrics (per-CPU hash) is replaced by the array, other pins are kept', { skip }, async (t) => {
  const root = pinRoot(t);
  const native = bpfNative();
  const oldMetrics = native.mapCreate(MapType.PercpuHash, 4, 16, 1024, 0, 'cilium_metrics');
  native.objPin(oldMetrics, `${root}/cilium_metrics`);
  native.closeFd(oldMetrics);
  const told: string[] = [];
  const first = await loadLxcDatapath({ pinRoot: root, maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 }, onDroppedPins: (names) => told.push(...names) });
  t.same(told, ['cilium_metrics'], 'the loader says which pin it replaced');
  const { ip, ...a } = A;
  await first.endpoints.setMany([[ip, a]]);
  first.close();
  t.same(dropIncompatiblePins(root), [], 'after the load nothing is left to replace');
  const dp = await loadLxcDatapath({ pinRoot: root, maxEntries: { ct: 1024, ipcache: 1024, policy: 1024 } });
  t.teardown(() => dp.close());
  t.equal(dp.metrics.map.info.type, MapType.PercpuArray, 'the metrics pin is the per-CPU array now');
  t.equal((await dp.endpoints.list()).length, 1, 'the endpoints pin was reused (its entry survived the reload)');
  const packet = ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: REMOTE.ip, protocol: 'tcp', sport: 40100 });
  t.equal(dp.fromContainer.testRun(packet).retval, TC_ACT_OK);
  t.same(await dp.metrics.read(), [{ reason: 0, direction: 'egress', packets: 1n, bytes: BigInt(packet.length) }], 'counts land in the array; unused indexes are not listed');
});

t.test('conntrack counters off (ctAccounting false): the entry tracks the flow, its counters stay at the first packet', { skip }, async (t) => {
  const dp = await loadLxcDatapath({ pinRoot: pinRoot(t), config: { ctAccounting: false } });
  t.teardown(() => dp.close());
  const { ip, ...a } = A;
  dp.endpoints.set(ip, a);
  await dp.ipcache.setMany([[`${REMOTE.ip}/32`, { identity: REMOTE.identity, netId: 0 }]]);
  const fromA = (tcpFlags: number) => dp.fromContainer.testRun(ipv4Packet({ srcMac: A.mac, dstMac: A.nodeMac, saddr: A.ip, daddr: REMOTE.ip, protocol: 'tcp', sport: 40200, tcpFlags }));
  const toA = (tcpFlags: number) => dp.toContainer.testRun(ipv4Packet({ srcMac: A.nodeMac, dstMac: A.mac, saddr: REMOTE.ip, daddr: A.ip, protocol: 'tcp', sport: 80, dport: 40200, tcpFlags }));
  t.equal(fromA(TCP_SYN).retval, TC_ACT_OK);
  t.equal(toA(TCP_SYN | TCP_ACK).retval, TC_ACT_OK);
  for (let i = 0; i < 3; i++) t.equal(fromA(TCP_ACK).retval, TC_ACT_OK);
  const [[, entry]] = (await dp.ct.list()) as [[abi.CtKey, abi.CtEntry]];
  t.match(entry, { packetsFwd: 1n, packetsRev: 0n, replySeen: true, tcpFlagsRev: TCP_SYN | TCP_ACK, tcpFlagsFwd: TCP_SYN | TCP_ACK }, 'state and flags follow the flow; only the creating packet is counted');
});
