/**
 * One line per monitor event, after Cilium's `cilium monitor` text output (the first two lines are
 * wrapped here, each is one line):
 *
 *     xx drop (Policy denied) flow 0x0 to endpoint 12, identity 4321->5678: 198.18.100.2:43210 -> 198.18.100.3:80 tcp
 *       [container:app=web] -> [container:app=db]
 *     Policy verdict log: flow 0x0 local EP ID 12, remote ID 4321, proto 6, ingress, action deny, match L3-L4,
 *       policy web-policy: 198.18.100.2:43210 -> 198.18.100.3:80 tcp [...] -> [...]
 *     -> endpoint 12 flow 0x0, identity 4321->5678: 198.18.100.2:43210 -> 198.18.100.3:80 tcp [...] -> [...]
 *
 * Cilium prints flow 0x0 when it has no flow hash; our datapath records none. The label sets of
 * both sides close the line because identities alone mean little to the reader.
 */
import type { MonitorEventModel } from '../api/models.js';
import { protocolHasPorts, protocolName } from './protocol-name.js';
import { escapeTerminalText } from './terminal-text.js';

function address(ip: string, port: number, protocol: number): string {
  return protocolHasPorts(protocol) ? `${ip}:${port}` : ip;
}

function labelList(labels: readonly string[]): string {
  return `[${labels.join(' ')}]`;
}

/** `<- endpoint 12` for from-endpoint, `-> stack (endpoint 12)` for to-stack, and so on. */
function tracePoint(event: MonitorEventModel): string {
  const point = /^(to|from)-(.+)$/.exec(event.observationPoint ?? '');
  const arrow = point?.[1] === 'from' ? '<-' : '->';
  const where = point?.[2] ?? event.observationPoint ?? 'endpoint';
  return where === 'endpoint'
    ? `${arrow} endpoint ${event.endpoint}`
    : `${arrow} ${where} (endpoint ${event.endpoint})`;
}

/**
 * The text line for one event (without newline). Labels, policy names and reasons come from
 * containers and policies: the line is escaped for the terminal (terminal-text.ts).
 */
export function formatMonitorEvent(event: MonitorEventModel): string {
  return escapeTerminalText(eventLine(event));
}

function eventLine(event: MonitorEventModel): string {
  const flow =
    `${address(event.saddr, event.sport, event.protocol)} -> ${address(event.daddr, event.dport, event.protocol)} ` +
    `${protocolName(event.protocol).toLowerCase()} ${labelList(event.srcLabels)} -> ${labelList(event.dstLabels)}`;
  const identities = `identity ${event.srcIdentity}->${event.dstIdentity}`;
  switch (event.type) {
    case 'drop': {
      const reason = event.reasonName ?? `reason ${event.reason ?? 'unknown'}`;
      const toFrom = event.direction === 'egress' ? 'from' : 'to';
      return `xx drop (${reason}) flow 0x0 ${toFrom} endpoint ${event.endpoint}, ${identities}: ${flow}`;
    }
    case 'policy-verdict': {
      const remote = event.direction === 'ingress' ? event.srcIdentity : event.dstIdentity;
      const details = [
        `flow 0x0 local EP ID ${event.endpoint}`,
        `remote ID ${remote}`,
        `proto ${event.protocol}`,
        event.direction,
        `action ${event.verdict ?? 'unknown'}`,
        ...(event.match ? [`match ${event.match}`] : []),
        ...(event.policy ? [`policy ${event.policy}`] : []),
      ];
      return `Policy verdict log: ${details.join(', ')}: ${flow}`;
    }
    case 'trace':
      return `${tracePoint(event)} flow 0x0, ${identities}: ${flow}`;
    default:
      // A type newer than this CLI: still one readable line.
      return `${String((event as { type: unknown }).type)} endpoint ${event.endpoint}, ${identities}: ${flow}`;
  }
}
