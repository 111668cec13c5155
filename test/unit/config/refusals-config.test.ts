/**
 * Settings refused when the flags are read, before anything on the host is touched: a metrics
 * port out of range, a block longer than the subnets it is carved from, a pool with host bits,
 * options of another or no store backend, negative durations, one path for both sockets.
 * Each is a ConfigError (ERR_CONFIG) whose message names the flag.
 */
import t, { type Test } from 'tap';
import { loadConfig, parseDuration, type Config } from '../../../src/config/config.js';
import { ConfigError } from '../../../src/util/errors.js';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(argv, env) as Config;

function refused(t: Test, argv: string[], message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  try {
    load(argv, env);
    t.fail(`${argv.join(' ')} was accepted`);
  } catch (err) {
    t.type(err, ConfigError, `${argv.join(' ')}: a ConfigError`);
    t.equal((err as ConfigError).code, 'ERR_CONFIG');
    t.match((err as Error).message, message, `${argv.join(' ')}: says why`);
  }
}

t.test('--metrics-address: the port must be 1..65535', async (t) => {
  refused(
    t,
    ['--metrics-address', '127.0.0.1:99999'],
    /^--metrics-address: "127\.0\.0\.1:99999" must be host:port with a port from 1 to 65535/,
  );
  refused(t, ['--metrics-address', '127.0.0.1:0'], /port from 1 to 65535/);
  refused(t, ['--metrics-address', '127.0.0.1'], /must be host:port/);
  t.equal(load(['--metrics-address', '127.0.0.1:65535']).metricsAddress, '127.0.0.1:65535');
  t.equal(load(['--metrics-address', '']).metricsAddress, '', 'empty turns metrics off');
});

t.test('--block-prefix-length must not be shorter than the subnets carved from the pool', async (t) => {
  refused(
    t,
    ['--block-prefix-length', '20'],
    /^--block-prefix-length 20 is shorter than the \/24 subnets carved from --default-pool/,
  );
  refused(t, ['--default-pool-prefix-length', '28', '--block-prefix-length', '26'], /\/28 subnets.*use 28 or more/);
  t.equal(load(['--block-prefix-length', '24']).blockPrefixLength, 24, 'one block per subnet is fine');
  t.equal(load(['--default-pool-prefix-length', '20', '--block-prefix-length', '22']).blockPrefixLength, 22);
  t.equal(load([]).blockPrefixLength, 26, 'defaults agree');
});

t.test('--default-pool must not have host bits set', async (t) => {
  refused(
    t,
    ['--default-pool', '10.200.1.0/16'],
    /^--default-pool: "10\.200\.1\.0\/16" has host bits set; the network is 10\.200\.0\.0\/16/,
  );
  refused(t, ['--default-pool', '198.18.160.1/20'], /the network is 198\.18\.160\.0\/20/);
  refused(t, [], /host bits/, { CILIUM_DOCKER_DEFAULT_POOL: '10.0.0.1/8' });
  t.equal(load(['--default-pool', '198.18.160.0/20']).defaultPool, '198.18.160.0/20');
  t.equal(
    load(['--default-pool', '0.0.0.0/0', '--default-pool-prefix-length', '8', '--block-prefix-length', '8'])
      .defaultPool,
    '0.0.0.0/0',
  );
});

t.test('--kvstore-opt: only options of the chosen backend', async (t) => {
  refused(
    t,
    ['--kvstore-opt', 'foo=bar'],
    /^--kvstore-opt foo: unknown option; options of the local store start with "local\."/,
  );
  refused(
    t,
    ['--kvstore-opt', 'etcd.address=http://198.18.0.1:2379'],
    /^--kvstore-opt etcd\.address: an option of the etcd store, but --kvstore is local; add --kvstore etcd/,
  );
  refused(
    t,
    ['--kvstore', 'etcd', '--kvstore-opt', 'consul.address=http://198.18.0.1:8500'],
    /an option of the consul store, but --kvstore is etcd/,
  );
  refused(
    t,
    ['--kvstore', 'consul', '--kvstore-opt', 'local.sync=full'],
    /an option of the local store, but --kvstore is consul/,
  );
  refused(t, [], /unknown option/, { CILIUM_DOCKER_KVSTORE_OPT: 'lease-ttl=5m' });
  t.same(load(['--kvstore-opt', 'local.sync=full']).kvstoreOpts, { 'local.sync': 'full' });
  t.same(load(['--kvstore', 'etcd', '--kvstore-opt', 'etcd.address=http://198.18.0.1:2379']).kvstoreOpts, {
    'etcd.address': 'http://198.18.0.1:2379',
  });
});

t.test('negative durations get a message of their own', async (t) => {
  refused(t, ['--resync-interval=-5m'], /^--resync-interval: "-5m" is negative; give a duration above zero/);
  refused(t, ['--identity-timeout=-1s'], /^--identity-timeout: "-1s" is negative/);
  refused(t, [], /^--identity-timeout: "-30s" is negative/, { CILIUM_DOCKER_IDENTITY_TIMEOUT: '-30s' });
  t.throws(() => parseDuration(' -2h', '--x'), { code: 'ERR_CONFIG', message: /is negative/ });
  // Without `=`, Node's parser cannot tell the value from a flag: its advice is kept, typed.
  refused(t, ['--resync-interval', '-5m'], /--resync-interval.*ambiguous.*--resync-interval=-XYZ/);
  t.equal(load(['--resync-interval', '30s']).resyncIntervalMs, 30_000);
});

t.test('unknown flags are ConfigErrors too', async (t) => {
  refused(t, ['--no-such-flag', 'x'], /no-such-flag/);
});

t.test('the plugin and API sockets need two paths', async (t) => {
  refused(
    t,
    ['--plugin-socket', '/run/cilium/cilium.sock'],
    /^--plugin-socket and --api-socket are both \/run\/cilium\/cilium\.sock/,
  );
  refused(t, ['--plugin-socket', '/run/x/a.sock', '--api-socket', '/run/x/../x/a.sock'], /are both/);
  t.equal(load(['--plugin-socket', '/run/docker/plugins/c2.sock']).pluginSocket, '/run/docker/plugins/c2.sock');
});
