/**
 * `--routing-mode`: tunnel by default (the existing --tunnel flags unchanged), native from the
 * flag, the environment (CILIUM_DOCKER_ROUTING_MODE) or the config file, anything else refused.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(argv, env) as Config;

t.test('tunnel by default, with the tunnel flags as before', async (t) => {
  const c = load([]);
  t.equal(c.routingMode, 'tunnel');
  t.equal(c.tunnel, 'vxlan');
  t.equal(load(['--tunnel', 'disabled']).routingMode, 'tunnel', '--tunnel disabled keeps its meaning (single host)');
});

t.test('native from the flag, the environment and the config file', async (t) => {
  t.equal(load(['--routing-mode', 'native']).routingMode, 'native');
  t.equal(load([], { CILIUM_DOCKER_ROUTING_MODE: 'native' }).routingMode, 'native', 'from the environment');
  const dir = mkdtempSync(join(tmpdir(), 'cd-routing-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'routing-mode: native\nunderlay-ip: 198.19.250.1\n');
  const c = load(['--config', file]);
  t.equal(c.routingMode, 'native', 'from the config file');
  t.equal(c.underlayIp, '198.19.250.1');
  t.equal(load(['--config', file, '--routing-mode', 'tunnel']).routingMode, 'tunnel', 'the flag wins over the file');
});

t.test('refuses unknown modes', async (t) => {
  t.throws(() => load(['--routing-mode', 'direct']), ConfigError);
  t.throws(() => load([], { CILIUM_DOCKER_ROUTING_MODE: 'vxlan' }), ConfigError);
});
