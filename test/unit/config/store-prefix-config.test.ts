/**
 * `--kvstore-opt prefix=` and `migrate-prefix=`: options of the store layer every backend shares
 * (not `<backend>.` options), read into Config and kept away from the backends' own parsers.
 */
import t from 'tap';
import { DEFAULT_KVSTORE_PREFIX, loadConfig, type Config } from '../../../src/config/config.js';
import { etcdOptionsFromKvstoreOpts } from '../../../src/kvstore/etcd/etcd-options.js';
import { consulOptionsFromKvstoreOpts } from '../../../src/kvstore/consul/consul-options.js';

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(argv, env) as Config;

t.test('the default prefix is Cilium’s cilium/state/, without migration', async (t) => {
  const config = load([]);
  t.equal(DEFAULT_KVSTORE_PREFIX, 'cilium/state/');
  t.equal(config.kvstorePrefix, 'cilium/state/');
  t.equal(config.kvstoreMigratePrefix, false);
});

t.test('prefix and migrate-prefix are accepted with every backend and stay out of the backend options', async (t) => {
  const local = load([
    '--kvstore-opt',
    'prefix=cluster-a/',
    '--kvstore-opt',
    'migrate-prefix=true',
    '--kvstore-opt',
    'local.sync=full',
  ]);
  t.equal(local.kvstorePrefix, 'cluster-a/');
  t.equal(local.kvstoreMigratePrefix, true);
  t.same(local.kvstoreOpts, { 'local.sync': 'full' });

  const etcd = load([
    '--kvstore',
    'etcd',
    '--kvstore-opt',
    'etcd.address=http://198.18.0.1:2379',
    '--kvstore-opt',
    'prefix=',
  ]);
  t.equal(etcd.kvstorePrefix, '', 'prefix= (empty) selects the unprefixed layout');
  t.same(
    etcdOptionsFromKvstoreOpts(etcd.kvstoreOpts),
    { endpoints: ['http://198.18.0.1:2379'] },
    'the etcd parser does not see it',
  );

  const consul = load(
    [
      '--kvstore',
      'consul',
      '--kvstore-opt',
      'consul.address=http://198.18.0.1:8500',
      '--kvstore-opt',
      'migrate-prefix=false',
    ],
    {},
  );
  t.equal(consul.kvstoreMigratePrefix, false);
  t.same(consulOptionsFromKvstoreOpts(consul.kvstoreOpts), { address: 'http://198.18.0.1:8500' });

  t.equal(
    load([], { CILIUM_DOCKER_KVSTORE_OPT: 'prefix=from-env/' }).kvstorePrefix,
    'from-env/',
    'from the environment too',
  );
});

t.test('migrate-prefix takes true or false only', async (t) => {
  for (const bad of ['yes', '1', '', 'TRUE']) {
    t.throws(
      () => load(['--kvstore-opt', `migrate-prefix=${bad}`]),
      { code: 'ERR_CONFIG', message: /^--kvstore-opt migrate-prefix=.*: use true .* or false/ },
      `refuses "${bad}"`,
    );
  }
});

t.test('an unknown option names the shared ones', async (t) => {
  t.throws(() => load(['--kvstore-opt', 'prefx=a/']), {
    code: 'ERR_CONFIG',
    message: /prefx: unknown option; .*prefix and migrate-prefix apply to every store/,
  });
});
