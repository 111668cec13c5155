/**
 * `cilium status` as text, one `Label:` column and its value per part of the daemon:
 *
 *     Node:        node-1
 *     KVStore:     Ok   etcd: 198.19.0.1:2379
 *     Overlay:     vxlan cilium_vxlan port 8472, underlay 198.19.0.1, MTU 1450; 1 peer(s)
 *                  node-2 198.19.0.2 blocks 198.18.64.0/26, 3 endpoint(s)
 *
 * Formatting apart from fetching, like monitor-format.ts: the command fetches the StatusModel,
 * this module only writes it. Every value comes from the daemon, so each line is escaped for
 * the terminal (terminalLines).
 */
import type { DnsStatusModel, OverlayStatusModel, StatusModel } from '../api/models.js';
import { terminalLines } from './terminal-text.js';

/** `Identities:` and a space: the values of every line start in this column. */
const VALUE_COLUMN = 13;

/** `Label:` padded to the value column, then the value. */
function field(label: string, value: string): string {
  return `${label}:`.padEnd(VALUE_COLUMN) + value;
}

/** A line that details the field above it, indented to the value column. */
function detail(text: string): string {
  return ' '.repeat(VALUE_COLUMN) + text;
}

function health(ok: boolean): string {
  return ok ? 'Ok' : 'Failure';
}

/** `3 running, 1 waiting-for-identity`: endpoints per state, `none` without any. */
function endpointCounts(byState: Record<string, number>): string {
  const counts = Object.entries(byState).map(([state, count]) => `${count} ${state}`);
  return counts.join(', ') || 'none';
}

function resyncText(resync: StatusModel['resync']): string {
  if (!resync) return 'n/a';
  let text = `every ${Math.round(resync.intervalMs / 1000)}s, ${resync.resyncs} done`;
  text += `, last ${resync.lastResyncAt ?? 'never'}`;
  if (resync.lastResyncMs !== undefined) text += ` (${resync.lastResyncMs} ms)`;
  if (resync.lastResyncError) text += `, failing: ${resync.lastResyncError}`;
  return `${text}; heartbeat ${resync.lastHeartbeatAt ?? 'never'}`;
}

function routingText(overlay: OverlayStatusModel | undefined): string {
  return overlay ? (overlay.routingMode ?? 'tunnel') : 'single host';
}

/** How packets leave for other nodes: the native route's device, or the tunnel and its encapsulation. */
function transportText(overlay: OverlayStatusModel): string {
  if (overlay.routingMode === 'native') return `native (no encapsulation) via ${overlay.device}`;
  const tunnel = `${overlay.tunnel} ${overlay.device} port ${overlay.port}`;
  return overlay.encap === 'bpf' ? `${tunnel}, encapsulation in BPF via ${overlay.underlayDevice}` : tunnel;
}

function overlayText(overlay: OverlayStatusModel | undefined): string {
  if (!overlay) return 'disabled (single host)';
  const underlay = `underlay ${overlay.underlayIp}, MTU ${overlay.mtu}`;
  return `${transportText(overlay)}, ${underlay}; ${overlay.peers.length} peer(s)`;
}

/** One line per peer node, then one per kernel route to a peer's block. */
function overlayDetails(overlay: OverlayStatusModel | undefined): string[] {
  const peers = (overlay?.peers ?? []).map((peer) => {
    const blocks = peer.blocks.join(',') || '-';
    return detail(`${peer.name} ${peer.underlayIp ?? '(no underlay)'} blocks ${blocks}, ${peer.endpoints} endpoint(s)`);
  });
  const routes = (overlay?.routes ?? []).map((route) => detail(`route ${route.prefix} via ${route.via}`));
  return [...peers, ...routes];
}

function dnsText(dns: DnsStatusModel | undefined): string {
  if (!dns) return 'disabled';
  const counters = [
    `${dns.queries} queries`,
    `${dns.clusterAnswers} cluster answers`,
    `${dns.nxdomain} NXDOMAIN`,
    `${dns.forwarded} forwarded`,
    `${dns.upstreamFailures} upstream failures`,
    `${dns.refused} refused`,
    `${dns.malformed} malformed`,
  ];
  return `${dns.address}, upstreams ${dns.upstreams.join(',') || 'none'}; ${counters.join(', ')}`;
}

/** The text of `cilium status` (without `--all-nodes`' cluster health), each line escaped and ending in a newline. */
export function formatStatus(status: StatusModel): string {
  return terminalLines([
    field('Node', status.node),
    field('Version', status.version),
    field('Uptime', `${status.uptimeSeconds}s`),
    field('Driver', status.driver),
    field('KVStore', `${health(status.kvstore.healthy)}   ${status.kvstore.backend}: ${status.kvstore.detail}`),
    field('Docker', `${health(status.docker.connected)}   ${status.docker.detail}`),
    field('Datapath', status.datapath),
    field('Resync', resyncText(status.resync)),
    field('Networks', String(status.networks)),
    field('Endpoints', endpointCounts(status.endpoints)),
    field('Identities', String(status.identities)),
    field('Routing', routingText(status.overlay)),
    field('Overlay', overlayText(status.overlay)),
    ...overlayDetails(status.overlay),
    field('DNS', dnsText(status.dns)),
  ]);
}
