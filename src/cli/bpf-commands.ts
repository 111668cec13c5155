/**
 * `cilium bpf ...`: the datapath's maps as the daemon reads them back (policy, ipcache,
 * conntrack, endpoints), as Cilium's `cilium bpf` commands show them.
 */
import type { Command } from 'commander';
import type { BpfConntrackModel, BpfEndpointModel, BpfEndpointPolicyModel, BpfIpcacheModel } from '../api/models.js';
import { apiClient, outputFormat, outputOption, print, printJson } from './command-context.js';
import { protocolHasPorts, protocolName } from './protocol-name.js';
import { renderTable } from './table.js';

const capitalized = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);

/**
 * A policy key's port part: `80/TCP`, `1024-2047/TCP` for a port block (`dport` with a prefix
 * length below 16), `ANY/UDP` for every port of one protocol, `ANY` for everything.
 */
export function formatPortProtocol(dport: number, portPrefixLen: number, protocol: number): string {
  const proto = protocol === 0 ? 'ANY' : protocolName(protocol);
  if (portPrefixLen <= 0) return protocol === 0 ? 'ANY' : `ANY/${proto}`;
  const size = 2 ** (16 - Math.min(portPrefixLen, 16));
  return `${size === 1 ? dport : `${dport}-${dport + size - 1}`}/${proto}`;
}

/** The enforcement header and entry table of `cilium bpf policy get`. */
export function renderBpfPolicy(policy: BpfEndpointPolicyModel): string {
  const onOff = (on: boolean) => (on ? 'enabled' : 'disabled');
  const header =
    `Endpoint ${policy.endpoint}, identity ${policy.identity}: ingress enforcement ${onOff(policy.enforceIngress)}, ` +
    `egress enforcement ${onOff(policy.enforceEgress)}\n`;
  const rows = policy.entries.map((e) => [
    capitalized(e.direction),
    String(e.identity),
    e.labels.length > 0 ? e.labels : e.identity === 0 ? 'ANY' : '',
    formatPortProtocol(e.dport, e.portPrefixLen, e.protocol),
    capitalized(e.verdict),
    e.policy ?? '',
  ]);
  return header + renderTable(['DIRECTION', 'IDENTITY', 'LABELS', 'PORT/PROTO', 'VERDICT', 'POLICY'], rows);
}

/** `198.19.0.2`, `198.19.0.2 via 198.19.0.254` (an underlay gateway) or `198.19.0.2 (device)`. */
function tunnelColumn(e: BpfIpcacheModel): string {
  if (!e.tunnelEndpoint) return '';
  if (e.tunnelNexthop === 'device') return `${e.tunnelEndpoint} (device)`;
  return e.tunnelNexthop ? `${e.tunnelEndpoint} via ${e.tunnelNexthop}` : e.tunnelEndpoint;
}

/** The table of `cilium bpf ipcache list`. */
export function renderBpfIpcache(entries: BpfIpcacheModel[]): string {
  return renderTable(
    ['PREFIX', 'IDENTITY', 'NETID', 'TUNNEL'],
    entries.map((e) => [e.prefix, String(e.identity), String(e.netId), tunnelColumn(e)]),
  );
}

function endpointAddress(ip: string, port: number, protocol: number): string {
  return protocolHasPorts(protocol) ? `${ip}:${port}` : ip;
}

/**
 * The table of `cilium bpf ct list`; counters as forward/reply ('-': the daemon does not
 * count, --bpf-ct-accounting false).
 */
export function renderBpfConntrack(entries: BpfConntrackModel[]): string {
  return renderTable(
    ['SOURCE', 'DESTINATION', 'PROTO', 'IDENTITY', 'PACKETS (FWD/REV)', 'BYTES (FWD/REV)', 'FLAGS', 'EXPIRES'],
    entries.map((e) => [
      endpointAddress(e.saddr, e.sport, e.protocol),
      endpointAddress(e.daddr, e.dport, e.protocol),
      protocolName(e.protocol),
      String(e.srcIdentity),
      e.packetsFwd === undefined ? '-' : `${e.packetsFwd}/${e.packetsRev}`,
      e.bytesFwd === undefined ? '-' : `${e.bytesFwd}/${e.bytesRev}`,
      [...(e.replySeen ? ['reply-seen'] : []), ...(e.closing ? ['closing'] : []), ...(e.denied ? ['denied'] : [])].join(
        ',',
      ) || '-',
      `${e.expiresInSeconds}s`,
    ]),
  );
}

/** The table of `cilium bpf endpoint list`. */
export function renderBpfEndpoints(entries: BpfEndpointModel[]): string {
  return renderTable(
    ['IP', 'ENDPOINT', 'IFINDEX', 'IDENTITY', 'NETID', 'ENFORCE', 'MAC'],
    entries.map((e) => [
      e.ip,
      String(e.endpoint),
      String(e.ifindex),
      String(e.identity),
      String(e.netId),
      [...(e.enforceIngress ? ['ingress'] : []), ...(e.enforceEgress ? ['egress'] : [])].join(',') || 'none',
      e.mac,
    ]),
  );
}

/** Adds `cilium bpf policy get`, `bpf ipcache list`, `bpf ct list` and `bpf endpoint list`. */
export function addBpfCommands(program: Command): void {
  const bpf = program.command('bpf').description('datapath (BPF map) state');

  bpf
    .command('policy')
    .description("endpoints' policy maps")
    .command('get <endpoint>')
    .description('the policy map of one endpoint (id, container name or id)')
    .addOption(outputOption())
    .action(async (ref: string, _opts, cmd: Command) => {
      const policy = await apiClient(cmd).bpfPolicy(ref);
      if (outputFormat(cmd) === 'json') return printJson(policy);
      print(renderBpfPolicy(policy));
    });

  bpf
    .command('ipcache')
    .description('the IP -> identity cache')
    .command('list')
    .description('list ipcache entries')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const entries = await apiClient(cmd).bpfIpcache();
      if (outputFormat(cmd) === 'json') return printJson(entries);
      print(renderBpfIpcache(entries));
    });

  bpf
    .command('ct')
    .description('the connection tracking table')
    .command('list')
    .description('list connection tracking entries')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const entries = await apiClient(cmd).bpfConntrack();
      if (outputFormat(cmd) === 'json') return printJson(entries);
      print(renderBpfConntrack(entries));
    });

  bpf
    .command('endpoint')
    .description('the endpoint map')
    .command('list')
    .description('list endpoint map entries')
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const entries = await apiClient(cmd).bpfEndpoints();
      if (outputFormat(cmd) === 'json') return printJson(entries);
      print(renderBpfEndpoints(entries));
    });
}
