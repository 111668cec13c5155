/**
 * The `cilium` command line. Talks to the daemon's agent API only (src/api/client.ts).
 * Output: tables by default, `-o json` for machines.
 */
import { Command } from 'commander';
import { DEFAULT_API_HOST } from '../api/client.js';
import type { EndpointModel, IdentityModel } from '../api/models.js';
import { CiliumDockerError } from '../util/errors.js';
import { addBpfCommands } from './bpf-commands.js';
import { apiClient, outputFormat, outputOption, print, printJson } from './command-context.js';
import { addMonitorCommand } from './monitor-command.js';
import { addKvstoreCommands } from './kvstore-commands.js';
import { addNetworkCommands } from './network-commands.js';
import { addNodeCommands, renderClusterHealth } from './node-commands.js';
import { addPolicyCommands } from './policy-commands.js';
import { formatStatus } from './status-format.js';
import { renderTable, type TableCell } from './table.js';
import { escapeTerminalText, terminalLines } from './terminal-text.js';
import { addVersionCommand } from './version-command.js';

function endpointRows(eps: EndpointModel[]): TableCell[][] {
  return eps.map((e) => [
    String(e.id),
    e.containerName ?? '',
    String(e.identity),
    e.labels.length > 0 ? e.labels : 'reserved:init',
    e.ipv4,
    e.state,
  ]);
}

/** LOCAL REFS: this node's references; NODES: every node holding one, from the store ('?': unreadable). */
function identityRows(ids: IdentityModel[]): TableCell[][] {
  return ids.map((i) => [
    String(i.id),
    i.labels,
    i.reserved ? 'reserved' : String(i.localReferences),
    i.reserved ? '' : (i.nodes ?? '?'),
  ]);
}

/** Builds the command tree. */
export function buildProgram(): Command {
  const program = new Command('cilium')
    .description('CLI of the cilium-docker daemon')
    .option('-H, --host <url>', `agent API (env CILIUM_HOST, default ${DEFAULT_API_HOST})`)
    .showHelpAfterError();

  program
    .command('status')
    .description('daemon, store, Docker and datapath health')
    .option('--all-nodes', 'add the health of every node of the cluster (as `cilium node list` shows it)')
    .addOption(outputOption())
    .action(async (opts: { allNodes?: boolean }, cmd: Command) => {
      const s = await apiClient(cmd).status();
      const nodes = opts.allNodes ? await apiClient(cmd).listNodes() : undefined;
      if (outputFormat(cmd) === 'json') return printJson(nodes ? { ...s, nodes } : s);
      print(formatStatus(s));
      if (nodes) print(renderClusterHealth(nodes));
    });

  const endpoint = program.command('endpoint').description('endpoints of this node');
  endpoint
    .command('list')
    .description('list endpoints')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const eps = await apiClient(cmd).listEndpoints();
      if (outputFormat(cmd) === 'json') return printJson(eps);
      print(
        renderTable(
          ['ENDPOINT', 'CONTAINER', 'IDENTITY', 'LABELS (source:key[=value])', 'IPv4', 'STATUS'],
          endpointRows(eps),
        ),
      );
    });
  endpoint
    .command('get <endpoint>')
    .description('one endpoint, by id, Docker endpoint id, container name or container id')
    .addOption(outputOption())
    .action(async (ref: string, _opts, cmd: Command) => {
      const ep = await apiClient(cmd).getEndpoint(ref);
      if (outputFormat(cmd) === 'json') return printJson(ep);
      print(
        terminalLines([
          `ID:               ${ep.id}`,
          `Docker endpoint:  ${ep.endpointId}`,
          `Container:        ${ep.containerName ?? ''} ${ep.containerId ?? ''}`.trimEnd(),
          `Network:          ${ep.networkName ?? ''} ${ep.networkId}`.trimEnd(),
          `IPv4:             ${ep.ipv4}`,
          `MAC:              ${ep.mac}`,
          `Interface:        ${ep.hostInterface}`,
          `State:            ${ep.state}`,
          `Identity:         ${ep.identity}`,
          `Labels:           ${ep.labels.join(', ') || 'reserved:init'}`,
          `Policy revision:  ${ep.policyRevision}`,
        ]),
      );
    });

  const identity = program.command('identity').description('security identities');
  identity
    .command('list')
    .description('list identities')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const ids = await apiClient(cmd).listIdentities();
      if (outputFormat(cmd) === 'json') return printJson(ids);
      print(renderTable(['ID', 'LABELS', 'LOCAL REFS', 'NODES'], identityRows(ids)));
    });
  identity
    .command('get <id>')
    .description('one identity')
    .addOption(outputOption())
    .action(async (id: string, _opts, cmd: Command) => {
      const i = await apiClient(cmd).getIdentity(id);
      if (outputFormat(cmd) === 'json') return printJson(i);
      print(renderTable(['ID', 'LABELS', 'LOCAL REFS', 'NODES'], identityRows([i])));
    });

  const ip = program.command('ip').description('IP -> identity mappings');
  ip.command('list')
    .description('list IP -> identity')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const ips = await apiClient(cmd).listIps();
      if (outputFormat(cmd) === 'json') return printJson(ips);
      print(
        renderTable(
          ['IP', 'IDENTITY', 'SOURCE', 'NODE'],
          ips.map((i) => [`${i.ip}/32`, String(i.identity), i.source, i.node]),
        ),
      );
    });

  program
    .command('cleanup')
    .description('remove every veth, route and device this daemon made on this host')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const r = await apiClient(cmd).cleanup();
      if (outputFormat(cmd) === 'json') return printJson(r);
      print(r.removed.length ? terminalLines([`removed: ${r.removed.join(', ')}`]) : 'nothing to remove\n');
    });

  addPolicyCommands(program);
  addNetworkCommands(program);
  addMonitorCommand(program);
  addBpfCommands(program);
  addKvstoreCommands(program);
  addNodeCommands(program);
  addVersionCommand(program);
  return program;
}

/** Runs the CLI; exit code 1 with a one-line message on any error. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const message =
      err instanceof CiliumDockerError
        ? `Error: ${err.message} (${err.code})`
        : `Error: ${err instanceof Error ? err.message : String(err)}`;
    // Daemon messages quote labels and names: escaped like every other output.
    process.stderr.write(`${escapeTerminalText(message)}\n`);
    process.exitCode = 1;
  }
}

// Only as the entry point: tests import buildProgram() to inspect the command tree.
if (import.meta.main) await main(process.argv);
