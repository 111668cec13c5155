/**
 * `cilium node list` (the cluster's nodes as this node knows them, after Cilium's) and the
 * cluster health section of `cilium status --all-nodes`.
 */
import type { Command } from 'commander';
import type { NodeModel } from '../api/models.js';
import { apiClient, outputFormat, outputOption, print, printJson } from './command-context.js';
import { renderTable } from './table.js';
import { terminalLines } from './terminal-text.js';

/** `tunnel vxlan:8472`, `native` or `none`. */
function routingColumn(n: NodeModel): string {
  if (n.routingMode !== 'tunnel') return n.routingMode;
  return `tunnel ${n.tunnel ?? ''}${n.tunnelPort !== undefined ? `:${n.tunnelPort}` : ''}`.trimEnd();
}

function lastSeenColumn(n: NodeModel): string {
  return n.lastSeenSecondsAgo === undefined ? '-' : `${n.lastSeenSecondsAgo}s ago`;
}

/** The table of `cilium node list`, with each unhealthy or unpeered node's reason under it. */
export function renderNodeList(nodes: NodeModel[]): string {
  const table = renderTable(
    ['NAME', 'UNDERLAY IP', 'ROUTING', 'BLOCKS', 'ENDPOINTS', 'PEER', 'HEALTH', 'LAST SEEN'],
    nodes.map((n) => [
      n.name,
      n.underlayIp ?? '-',
      routingColumn(n),
      n.blocks.length > 0 ? n.blocks : '-',
      String(n.endpoints),
      n.local ? 'local' : n.peer ? 'yes' : 'no',
      n.health,
      lastSeenColumn(n),
    ]),
  );
  return table + terminalLines(nodes.filter((n) => n.detail).map((n) => `${n.name}: ${n.detail}`));
}

/** `cilium status --all-nodes`: one summary line and one line per node. */
export function renderClusterHealth(nodes: NodeModel[]): string {
  const ok = nodes.filter((n) => n.health === 'ok').length;
  const lines = nodes.map(
    (n) =>
      `  ${n.name}${n.local ? ' (local)' : ''}: ${n.health}, last seen ` +
      `${lastSeenColumn(n)}${n.underlayIp ? `, underlay ${n.underlayIp}` : ''}${n.detail ? ` (${n.detail})` : ''}`,
  );
  return terminalLines([`Cluster health:   ${ok}/${nodes.length} nodes ok (heartbeats in the store)`, ...lines]);
}

/** Adds `node list`. */
export function addNodeCommands(program: Command): void {
  const node = program.command('node').description("the cluster's nodes");
  node
    .command('list')
    .description('every node with a record in the store: underlay address, routing, address blocks, health')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const nodes = await apiClient(cmd).listNodes();
      if (outputFormat(cmd) === 'json') return printJson(nodes);
      print(renderNodeList(nodes));
    });
}
