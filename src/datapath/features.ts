/**
 * Kernel feature probes, run once at start (STYLE: probe once, report in `cilium status`).
 *
 * A tunnel kind is supported when the kernel lets us create a device of that type in external
 * (collect_md) mode: the device type may be built in or a module, and /proc or /sys do not say
 * which reliably, so the probe creates a throw-away device in this network namespace and deletes
 * it at once. A device we already own (cilium_vxlan after a restart) counts as proof too.
 */
import { randomBytes } from 'node:crypto';
import { runIp } from './link/ip-command.js';
import { getLink } from './link/veth.js';
import { GeneveUnsupportedError, VxlanUnsupportedError } from '../util/errors.js';

/** Encapsulations the overlay can use. */
export type TunnelKind = 'vxlan' | 'geneve';

/** What the kernel can do, as far as the daemon cares. */
export interface KernelFeatures {
  /** `ip link add … type vxlan external` works. */
  vxlanExternal: boolean;
  /** `ip link add … type geneve external` works. */
  geneveExternal: boolean;
  /** Why a probe failed (iproute2's message), by tunnel kind. */
  detail: Partial<Record<TunnelKind, string>>;
}

/** Names of the per-host tunnel devices (Cilium's). */
export const TUNNEL_DEVICE: Readonly<Record<TunnelKind, string>> = { vxlan: 'cilium_vxlan', geneve: 'cilium_geneve' };

/** Creates and deletes a throw-away external device of `kind`; resolves with undefined or the failure. */
async function probeDevice(kind: TunnelKind): Promise<string | undefined> {
  if (await getLink(TUNNEL_DEVICE[kind])) return undefined;
  const name = `cdprobe${randomBytes(3).toString('hex')}`;
  const args =
    kind === 'vxlan'
      ? ['link', 'add', name, 'type', 'vxlan', 'external', 'dstport', '0']
      : ['link', 'add', name, 'type', 'geneve', 'external'];
  try {
    await runIp(args);
  } catch (err) {
    return (err as { stderr?: string }).stderr?.trim() || (err instanceof Error ? err.message : String(err));
  }
  await runIp(['link', 'del', name]).catch(() => undefined);
  return undefined;
}

/** Probes the kernel of this network namespace. */
export async function probeKernelFeatures(): Promise<KernelFeatures> {
  const [vxlan, geneve] = await Promise.all([probeDevice('vxlan'), probeDevice('geneve')]);
  const detail: KernelFeatures['detail'] = {};
  if (vxlan !== undefined) detail.vxlan = vxlan;
  if (geneve !== undefined) detail.geneve = geneve;
  return { vxlanExternal: vxlan === undefined, geneveExternal: geneve === undefined, detail };
}

/**
 * Throws the typed error for a tunnel kind the kernel lacks, naming the missing feature and the
 * alternatives, before anything is configured (never a half-configured host).
 */
export function requireTunnelSupport(kind: TunnelKind, features: KernelFeatures): void {
  if (kind === 'geneve' && !features.geneveExternal) {
    const alternative = features.vxlanExternal ? '--tunnel vxlan (supported here)' : '--tunnel disabled';
    throw new GeneveUnsupportedError(
      `--tunnel geneve: this kernel has no geneve device type in external (collect_md) mode ` +
        `(ip link add … type geneve external: ${features.detail.geneve ?? 'failed'}); ` +
        `use ${alternative}, or load the geneve module (CONFIG_GENEVE) and restart`,
    );
  }
  if (kind === 'vxlan' && !features.vxlanExternal) {
    throw new VxlanUnsupportedError(
      `--tunnel vxlan: this kernel has no vxlan device type in external (collect_md) mode ` +
        `(ip link add … type vxlan external: ${features.detail.vxlan ?? 'failed'}); ` +
        `load the vxlan module (CONFIG_VXLAN), or use --tunnel disabled for a single host`,
    );
  }
}
