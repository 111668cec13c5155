/**
 * Container veth pairs and the host's router device, managed with iproute2.
 *
 * Naming: host side `lxc<11 hex>` and container side `tmp<11 hex>` from the endpoint id (Linux
 * limits names to 15 bytes; see vethNames for ids that share 11 hex characters). dockerd moves
 * `tmp…` into the container and renames it `eth<N>`. The names are recorded with the endpoint and
 * passed in here; a link is deleted only while it still has the ifindex recorded at creation.
 *
 * Routing model (plain kernel routing, before the eBPF datapath takes over): each container IP
 * has a /32 route to its `lxc…` device; `proxy_arp` on `lxc…` answers the container's ARP for
 * its same-subnet peers (routed through the host), and the network's gateway address lives on
 * `cilium_host` (a veth pair `cilium_host`/`cilium_net`, as in Cilium), so the kernel answers
 * ARP for it and forwards the container's default-route traffic.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { runIp, runIpBatch, runIpJson, isNotFound, isExists } from './ip-command.js';

/** Name of the host device that carries the gateway addresses. */
export const HOST_DEVICE = 'cilium_host';
/** Peer of HOST_DEVICE. */
export const HOST_PEER_DEVICE = 'cilium_net';

/**
 * Host- and container-side names for an endpoint id (Docker's 64-hex endpoint id). `attempt` 0 is
 * the id's first 11 hex characters; ids that share them (the caller knows which names are taken)
 * use attempt 1, 2, ...: 11 hex characters of a hash of the whole id and the attempt.
 */
export function vethNames(endpointId: string, attempt = 0): { host: string; container: string } {
  const suffix =
    attempt === 0
      ? endpointId
          .replace(/[^0-9a-f]/gi, '')
          .slice(0, 11)
          .toLowerCase()
      : createHash('sha256').update(`${endpointId}/${attempt}`).digest('hex').slice(0, 11);
  return { host: `lxc${suffix}`, container: `tmp${suffix}` };
}

/** A link as `ip -json link show` prints it (the fields we use). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  address: string;
  mtu: number;
  operstate: string;
}

/** The link named `name`, or undefined. */
export async function getLink(name: string): Promise<LinkInfo | undefined> {
  try {
    const links = await runIpJson<LinkInfo>(['link', 'show', 'dev', name]);
    return links[0];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Every link whose name starts with `prefix`. */
export async function listLinks(prefix: string): Promise<LinkInfo[]> {
  const links = await runIpJson<LinkInfo>(['link', 'show']);
  return links.filter((l) => l.ifname.startsWith(prefix));
}

async function setSysctl(path: string, value: string): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current?.trim() === value) return;
  await writeFile(path, value);
}

/**
 * Creates the endpoint's veth pair (idempotent: an existing pair is kept), brings the host side
 * up with proxy ARP, optionally sets the container side's MAC and MTU, and returns both links.
 */
export async function createVethPair(
  names: { host: string; container: string },
  options: { mac?: string; mtu?: number; routeIp?: string } = {},
): Promise<{ host: LinkInfo; container: LinkInfo; routed: boolean }> {
  const add = ['link', 'add', names.host];
  if (options.mtu) add.push('mtu', String(options.mtu));
  add.push('type', 'veth', 'peer', 'name', names.container);
  if (options.mac) add.push('address', options.mac);
  if (options.mtu) add.push('mtu', String(options.mtu));
  let host: LinkInfo | undefined;
  let container: LinkInfo | undefined;
  let routed = false;
  try {
    // One process for create + up + route + both lookups (container start pays for every spawn).
    const route = options.routeIp ? [routeCommand(options.routeIp, names.host)] : [];
    // addrgenmode none before up: no IPv6 link-local on the host side, so the host sends no MLD
    // reports and router solicitations into the container (to_container would drop them as
    // unsupported L3, a few `cilium monitor` drops per new container; the datapath is IPv4).
    const quiet = ['link', 'set', names.host, 'addrgenmode', 'none'];
    const [hostShow, containerShow] = await runIpBatch([
      add,
      quiet,
      ['link', 'set', names.host, 'up'],
      ...route,
      ['link', 'show', 'dev', names.host],
      ['link', 'show', 'dev', names.container],
    ]);
    routed = route.length > 0;
    host = (hostShow as LinkInfo[] | undefined)?.[0];
    container = (containerShow as LinkInfo[] | undefined)?.[0];
  } catch (err) {
    if (!isExists(err)) throw err;
    // Idempotent re-create: the pair exists (the container side may already be in the sandbox).
    await runIp(['link', 'set', names.host, 'up']);
    [host, container] = await Promise.all([getLink(names.host), getLink(names.container)]);
  }
  await setSysctl(`/proc/sys/net/ipv4/conf/${names.host}/proxy_arp`, '1');
  await setSysctl(`/proc/sys/net/ipv4/conf/${names.host}/rp_filter`, '0');
  if (!host) throw new Error(`veth ${names.host} vanished right after creation`);
  return {
    host,
    container: container ?? {
      ifindex: 0,
      ifname: names.container,
      address: options.mac ?? '',
      mtu: options.mtu ?? 1500,
      operstate: 'UNKNOWN',
    },
    routed,
  };
}

/** Deletes a link (and so its veth peer); missing links are fine. */
export async function deleteLink(name: string): Promise<void> {
  try {
    await runIpBatch([['link', 'del', name]]);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * Deletes link `name` if it is still the link `ifindex` (a link made since under the same name
 * belongs to someone else and is left alone). Returns what it found: 'deleted', 'missing', or
 * 'not-owned' (the name now has another index).
 */
export async function deleteOwnedLink(name: string, ifindex: number): Promise<'deleted' | 'missing' | 'not-owned'> {
  const link = await getLinkFromWorker(name);
  if (!link) return 'missing';
  if (link.ifindex !== ifindex) return 'not-owned';
  await deleteLink(name);
  return 'deleted';
}

/** getLink through the batch worker (no process spawn). */
async function getLinkFromWorker(name: string): Promise<LinkInfo | undefined> {
  try {
    const [shown] = await runIpBatch([['link', 'show', 'dev', name]]);
    return (shown as LinkInfo[] | undefined)?.[0];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Routes `ip/32` to `device` (replace: idempotent). */
export async function routeToDevice(ip: string, device: string): Promise<void> {
  await runIpBatch([routeCommand(ip, device)]);
}

function routeCommand(ip: string, device: string): string[] {
  return ['route', 'replace', `${ip}/32`, 'dev', device, 'scope', 'link'];
}

/** Removes the /32 route of `ip` if present. */
export async function removeHostRoute(ip: string): Promise<void> {
  try {
    await runIp(['route', 'del', `${ip}/32`]);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * Ensures the router device pair exists and is up, and that IPv4 forwarding is on in this
 * namespace (the host routes between containers and to the outside).
 */
export async function ensureHostDevice(): Promise<LinkInfo> {
  let link = await getLink(HOST_DEVICE);
  if (!link) {
    try {
      await runIp(['link', 'add', HOST_DEVICE, 'type', 'veth', 'peer', 'name', HOST_PEER_DEVICE]);
    } catch (err) {
      if (!isExists(err)) throw err;
    }
  }
  await runIp(['link', 'set', HOST_DEVICE, 'up']);
  await runIp(['link', 'set', HOST_PEER_DEVICE, 'up']);
  await setSysctl('/proc/sys/net/ipv4/ip_forward', '1');
  link = await getLink(HOST_DEVICE);
  if (!link) throw new Error(`${HOST_DEVICE} vanished right after creation`);
  return link;
}

/** Adds `ip/32` to the router device (idempotent). */
export async function addRouterAddress(ip: string): Promise<void> {
  try {
    await runIp(['addr', 'add', `${ip}/32`, 'dev', HOST_DEVICE]);
  } catch (err) {
    if (!isExists(err)) throw err;
  }
}

/** Removes `ip/32` from the router device (idempotent). */
export async function removeRouterAddress(ip: string): Promise<void> {
  try {
    await runIp(['addr', 'del', `${ip}/32`, 'dev', HOST_DEVICE]);
  } catch (err) {
    if (!isNotFound(err) && !/Cannot assign requested address/.test(String(err))) throw err;
  }
}
