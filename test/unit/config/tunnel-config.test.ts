/**
 * Tunnel options: vxlan by default on port 8472, geneve's own default port, explicit ports and
 * underlay addresses, and clear refusals of anything else.
 */
import t from 'tap';
import { loadConfig, type Config } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

const load = (argv: string[]) => loadConfig(argv, {}) as Config;

t.test('defaults: vxlan on 8472, underlay from the default route', async (t) => {
  const c = load([]);
  t.equal(c.tunnel, 'vxlan');
  t.equal(c.tunnelPort, 8472);
  t.equal(c.underlayIp, '');
});

t.test('geneve defaults to 6081; an explicit port wins; disabled is accepted', async (t) => {
  t.equal(load(['--tunnel', 'geneve']).tunnelPort, 6081);
  t.equal(load(['--tunnel', 'vxlan', '--tunnel-port', '4789']).tunnelPort, 4789);
  t.equal(load(['--tunnel', 'disabled']).tunnel, 'disabled');
  t.equal(load(['--underlay-ip', '198.19.250.1']).underlayIp, '198.19.250.1');
  t.equal(
    loadConfig([], { CILIUM_DOCKER_TUNNEL: 'disabled' }) !== 'help' &&
      (loadConfig([], { CILIUM_DOCKER_TUNNEL: 'disabled' }) as Config).tunnel,
    'disabled',
    'from the environment',
  );
});

t.test('refuses unknown modes, bad ports and bad addresses', async (t) => {
  t.throws(() => load(['--tunnel', 'gre']), ConfigError);
  t.throws(() => load(['--tunnel-port', '0']), ConfigError);
  t.throws(() => load(['--tunnel-port', '70000']), ConfigError);
  t.throws(() => load(['--underlay-ip', '198.19.250.1/24']), ConfigError);
  t.throws(() => load(['--underlay-ip', '198.19.250.300']), ConfigError);
});
