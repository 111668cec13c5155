/**
 * Cluster DNS options: off by default; --dns-address gets port 53 unless given; --dns-upstream is
 * repeatable, `none` means no upstream, absent means the host's resolv.conf; bad values are refused.
 */
import t from 'tap';
import { loadConfig, type Config } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(argv, env) as Config;

t.test('off by default, upstreams from resolv.conf', async (t) => {
  const c = load([]);
  t.equal(c.dnsAddress, '');
  t.equal(c.dnsUpstreams, undefined);
});

t.test('address, port 53 by default; upstreams repeatable; none', async (t) => {
  t.equal(load(['--dns-address', '198.18.0.1']).dnsAddress, '198.18.0.1:53');
  t.equal(load(['--dns-address', '198.18.0.1:5353']).dnsAddress, '198.18.0.1:5353');
  t.same(load(['--dns-upstream', '198.18.0.9', '--dns-upstream', '198.18.0.8:5353']).dnsUpstreams, [
    '198.18.0.9',
    '198.18.0.8:5353',
  ]);
  t.same(load(['--dns-upstream', 'none']).dnsUpstreams, []);
  t.same(load([], { CILIUM_DOCKER_DNS_UPSTREAM: '198.18.0.9,198.18.0.10' }).dnsUpstreams, [
    '198.18.0.9',
    '198.18.0.10',
  ]);
});

t.test('bad values are refused', async (t) => {
  t.throws(() => load(['--dns-address', 'localhost']), ConfigError);
  t.throws(() => load(['--dns-address', '198.18.0.1:70000']), ConfigError);
  t.throws(() => load(['--dns-upstream', '198.18.300.1']), ConfigError);
});
