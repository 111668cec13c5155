/**
 * --bpf-ct-accounting (env CILIUM_DOCKER_BPF_CT_ACCOUNTING): the conntrack entries' packet and
 * byte counters, off unless set to true; anything but true/false is refused by name.
 */
import t from 'tap';
import { loadConfig, type Config } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(argv, env) as Config;

t.test('off by default (as Cilium); true turns it on, by flag or environment', async (t) => {
  t.equal(load([]).ctAccounting, false);
  t.equal(load(['--bpf-ct-accounting', 'false']).ctAccounting, false);
  t.equal(load([], { CILIUM_DOCKER_BPF_CT_ACCOUNTING: 'true' }).ctAccounting, true);
  t.equal(load(['--bpf-ct-accounting', 'true']).ctAccounting, true);
});

t.test('other values are refused', async (t) => {
  t.throws(() => load(['--bpf-ct-accounting', 'off']), ConfigError);
  t.throws(() => load(['--bpf-ct-accounting', 'off']), /--bpf-ct-accounting: "off" must be true or false/);
});
