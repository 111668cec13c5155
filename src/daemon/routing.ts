/**
 * How this node reaches others, decided once at start from the flags, the kernel's features and
 * the underlay address: a tunnel (`--routing-mode tunnel`, `--tunnel vxlan|geneve`), native
 * routing, or neither (single host, or no underlay address found).
 */
import type { Config } from '../config/config.js';
import { requireTunnelSupport, type KernelFeatures, type TunnelKind } from '../datapath/features.js';
import { findUnderlay } from '../datapath/link/tunnel-link.js';
import { log } from '../util/log.js';

/** The tunnel this node offers (the datapath's tunnel settings). */
export interface TunnelChoice {
  kind: TunnelKind;
  port: number;
  underlayMtu: number;
  underlayIp: string;
  underlayDevice: string;
  encap: 'bpf' | 'device';
}

/** Native routing over the underlay device. */
export interface NativeChoice {
  underlayMtu: number;
  underlayIp: string;
  device: string;
}

/**
 * The tunnel or native routing of this node; neither when the routing needs an underlay address
 * and none is found (logged: the node is then reachable from no other node). A tunnel the kernel
 * cannot do fails the start before anything is configured.
 */
export async function chooseRouting(
  config: Config,
  features: KernelFeatures,
): Promise<{ tunnel?: TunnelChoice; native?: NativeChoice }> {
  if (config.routingMode === 'native') {
    // No encapsulation: --tunnel does not apply; peers route our blocks to the underlay address.
    const underlay = await findUnderlay(config.underlayIp);
    if (underlay) return { native: { underlayMtu: underlay.mtu, underlayIp: underlay.ip, device: underlay.device } };
    log.warn(
      { routingMode: 'native' },
      'no underlay address (no default route and no --underlay-ip): native routing off, ' +
        'this node is reachable from no other node',
    );
  } else if (config.tunnel !== 'disabled') {
    requireTunnelSupport(config.tunnel, features);
    const underlay = await findUnderlay(config.underlayIp);
    if (underlay)
      return {
        tunnel: {
          kind: config.tunnel,
          port: config.tunnelPort,
          underlayMtu: underlay.mtu,
          underlayIp: underlay.ip,
          underlayDevice: underlay.device,
          encap: config.tunnelEncap,
        },
      };
    log.warn(
      { tunnel: config.tunnel },
      'no underlay address (no default route and no --underlay-ip): overlay off, ' +
        'this node is reachable from no other node',
    );
  }
  return {};
}
