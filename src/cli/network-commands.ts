/**
 * `cilium network list`: the cluster's network names (`networks/v1/<name>`) and this node's
 * networks, with whether each local network agrees with its cluster definition.
 */
import type { Command } from 'commander';
import type { NetworkModel } from '../api/models.js';
import { apiClient, outputFormat, outputOption, print, printJson } from './command-context.js';
import { renderTable } from './table.js';
import { terminalLines } from './terminal-text.js';

/** Table rows: one per network; a conflict's explanation follows the table. */
export function networkRows(networks: NetworkModel[]): string[][] {
  return networks.map((n) => [
    n.name || '(unnamed)',
    n.networkId?.slice(0, 12) ?? '',
    n.subnet,
    n.ipRange ?? '',
    n.gateway ?? '',
    n.internal ? 'yes' : '',
    n.createdBy ?? '',
    n.nodes.join(','),
    n.status,
  ]);
}

/** Adds `network list`. */
export function addNetworkCommands(program: Command): void {
  const network = program.command('network').description('Docker networks by name across hosts');
  network
    .command('list')
    .description("cluster network names and this node's networks, with their agreement status")
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const networks = await apiClient(cmd).listNetworks();
      if (outputFormat(cmd) === 'json') return printJson(networks);
      let text = renderTable(
        ['NAME', 'NETWORK ID', 'SUBNET', 'IP RANGE', 'GATEWAY', 'INTERNAL', 'CREATED BY', 'NODES', 'STATUS'],
        networkRows(networks),
      );
      text += terminalLines(
        networks
          .filter((n) => n.detail && n.status !== 'ok')
          .map((n) => `${n.name || n.networkId?.slice(0, 12)}: ${n.detail}`),
      );
      print(text);
    });
}
