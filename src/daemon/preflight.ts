/**
 * The daemon's pre-flight checks: everything that can be checked before the host is touched
 * (links, pins, the masquerade rule, sockets, the state directory), so that a bad setting fails
 * the start naming its flag and leaves nothing behind. main.ts runs them before the first step.
 */
import type { Config } from '../config/config.js';
import { CiliumDockerError } from '../util/errors.js';
import { localOptionsFromKvstoreOpts } from '../kvstore/local/local-store.js';
import { etcdOptionsFromKvstoreOpts } from '../kvstore/etcd/etcd-store.js';
import { consulOptionsFromKvstoreOpts } from '../kvstore/consul/consul-store.js';
import { parseStorePrefix } from '../kvstore/store-prefix.js';
import { STORE_LAYOUT_PREFIXES } from './store-layout.js';
import { cronExpressionFor } from '../cluster/resync-schedule.js';
import { checkListenAddresses, type ListenAddress } from '../util/listen-check.js';
import { assertPrivateDir } from '../util/private-dir.js';
import { checkUnixSocketPath } from '../util/http-server.js';

/**
 * Refuses, naming the flag, a setting the start would fail on half-way; touches nothing.
 * `checkBpfRoot` is the datapath's check of --bpf-root (given by main.ts, the one importer of
 * the concrete datapath).
 */
export async function preflight(config: Config, checkBpfRoot: (bpfRoot: string) => void): Promise<void> {
  cronExpressionFor(config.resyncIntervalMs);
  if (config.kvstore === 'local') localOptionsFromKvstoreOpts(config.kvstoreOpts);
  else if (config.kvstore === 'etcd') etcdOptionsFromKvstoreOpts(config.kvstoreOpts);
  else consulOptionsFromKvstoreOpts(config.kvstoreOpts);
  parseStorePrefix(config.kvstorePrefix, STORE_LAYOUT_PREFIXES);
  assertPrivateDir(config.stateDir, '--state-dir');
  checkBpfRoot(config.bpfRoot);
  for (const [option, path] of [
    ['--plugin-socket', config.pluginSocket],
    ['--api-socket', config.apiSocket],
  ] as const) {
    await checkUnixSocketPath(path).catch((err: unknown) => {
      throw err instanceof CiliumDockerError
        ? new CiliumDockerError(err.kind, err.code, `${option}: ${err.message}`, { cause: err })
        : err;
    });
  }
  const listeners: ListenAddress[] = [];
  for (const [option, address, protocols] of [
    ['--metrics-address', config.metricsAddress, ['tcp']],
    ['--dns-address', config.dnsAddress, ['udp', 'tcp']],
  ] as const) {
    if (address === '') continue;
    const colon = address.lastIndexOf(':');
    listeners.push({ option, host: address.slice(0, colon), port: Number(address.slice(colon + 1)), protocols });
  }
  await checkListenAddresses(listeners);
}
