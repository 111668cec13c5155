/**
 * The text form of monitor events (formatMonitorEvent), beyond the cases the end-to-end test
 * prints: egress drops, ports-less protocols, deny verdicts without a policy, trace points.
 */
import t from 'tap';
import { formatMonitorEvent } from '../../../src/cli/monitor-format.js';
import { dropEvent, traceEvent, verdictEvent } from '../api/fixtures/api-harness.js';

t.test('an egress drop says "from endpoint"; an unnamed reason shows its number', async (t) => {
  t.equal(
    formatMonitorEvent({ ...dropEvent, direction: 'egress', reasonName: undefined, reason: 181 }),
    'xx drop (reason 181) flow 0x0 from endpoint 12, identity 4321->5678: ' +
      '198.18.100.2:43210 -> 198.18.100.3:80 tcp [container:app=web] -> [container:app=db]',
  );
});

t.test('ICMP has no ports; several labels are space-separated like Cilium prints them', async (t) => {
  t.equal(
    formatMonitorEvent({
      ...dropEvent,
      protocol: 1,
      sport: 0,
      dport: 0,
      srcLabels: ['container:app=web', 'container:tier=front'],
      dstLabels: [],
    }),
    'xx drop (Policy denied) flow 0x0 to endpoint 12, identity 4321->5678: ' +
      '198.18.100.2 -> 198.18.100.3 icmp [container:app=web container:tier=front] -> []',
  );
});

t.test('an ingress deny verdict names the source as remote and omits a missing policy', async (t) => {
  t.equal(
    formatMonitorEvent({
      ...verdictEvent,
      direction: 'ingress',
      verdict: 'deny',
      match: undefined,
      policy: undefined,
      protocol: 17,
    }),
    'Policy verdict log: flow 0x0 local EP ID 12, remote ID 4321, proto 17, ingress, action deny: ' +
      '198.18.100.2:43210 -> 198.18.100.3:80 udp [container:app=web] -> [container:app=db]',
  );
});

t.test('trace points: from-endpoint, to-stack and none', async (t) => {
  t.match(
    formatMonitorEvent({ ...traceEvent, observationPoint: 'from-endpoint' }),
    /^<- endpoint 12 flow 0x0, identity 4321->5678: /,
  );
  t.match(formatMonitorEvent({ ...traceEvent, observationPoint: 'to-stack' }), /^-> stack \(endpoint 12\) flow 0x0, /);
  t.match(formatMonitorEvent({ ...traceEvent, observationPoint: undefined }), /^-> endpoint 12 flow 0x0, /);
});
