/**
 * DESIGN.md's rules on structure, checked on the source: dependency direction between modules
 * (folders of src/), no cycles, and each third-party package imported from one module only
 * (yaml is the one listed exception: config files, policy documents and etcd client configs are
 * three different YAML inputs). Also type-checks the whole tree, tests included.
 */
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const SRC = join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/**
 * Module of a source file: its first folder under src/ (`kvstore/etcd` for backends,
 * `api/backend` for the agent API's handlers), or the file for src/main.ts.
 */
function moduleOf(file: string): string {
  const rel = relative(SRC, file).split('/');
  if (rel.length === 1) return rel[0]!.replace(/\.ts$/, '');
  if (rel[0] === 'kvstore' && rel.length > 2) return `kvstore/${rel[1]}`;
  if (rel[0] === 'datapath' && rel.length > 2) return `datapath/${rel[1]}`;
  if (rel[0] === 'api' && rel.length > 2) return `api/${rel[1]}`;
  return rel[0]!;
}

const imports = new Map<string, { local: Set<string>; packages: Set<string> }>();
for (const file of files(SRC)) {
  const text = readFileSync(file, 'utf8');
  const entry = imports.get(moduleOf(file)) ?? { local: new Set(), packages: new Set() };
  imports.set(moduleOf(file), entry);
  for (const m of text.matchAll(/^(?:import|export)[^'"]*from\s+'([^']+)'/gm)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) {
      const target = moduleOf(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      if (target !== moduleOf(file)) entry.local.add(target);
    } else if (!spec.startsWith('node:')) {
      entry.packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
}

/** Allowed module dependencies (DESIGN.md "Dependency direction"), util and main aside. */
const allowed: Record<string, string[]> = {
  config: ['util'],
  kvstore: ['util'],
  'kvstore/local': ['kvstore', 'util'],
  'kvstore/etcd': ['kvstore', 'util'],
  'kvstore/consul': ['kvstore', 'util'],
  ipam: ['kvstore', 'util'],
  identity: ['kvstore', 'util'],
  policy: ['identity', 'util'],
  datapath: ['datapath/bpf', 'datapath/link', 'util'],
  'datapath/bpf': ['util'],
  'datapath/link': ['util'],
  docker: ['util'],
  endpoint: ['ipam', 'identity', 'policy', 'datapath', 'datapath/link', 'docker', 'kvstore', 'util'],
  // ipam: the block claims' keys (pool-store.ts owns them; the peer watcher reads them).
  cluster: ['kvstore', 'ipam', 'datapath', 'util'],
  plugin: ['endpoint', 'ipam', 'util'],
  // The server, its models and client, and the route groups (kvstore, node, version).
  api: ['cluster', 'kvstore', 'util'],
  // The AgentBackend's handlers, one module per resource: domain objects -> the API's models.
  'api/backend': ['api', 'endpoint', 'identity', 'ipam', 'cluster', 'kvstore', 'datapath', 'datapath/bpf', 'util'],
  cli: ['api', 'util'],
  dns: ['util'],
  // The composition root's pieces main.ts runs: pre-flight checks, opening the stores, the routing
  // choice, the store layout (each top-level key prefix from its owner: identity, ipam, endpoint,
  // cluster), and building the parts: local parts, cluster side, DNS, plugin socket, Docker
  // watcher, agent API (api/backend's handlers), metrics collection (datapath/bpf's drop reasons).
  daemon: [
    'config',
    'kvstore',
    'kvstore/local',
    'kvstore/etcd',
    'kvstore/consul',
    'identity',
    'ipam',
    'endpoint',
    'datapath',
    'datapath/bpf',
    'datapath/link',
    'cluster',
    'dns',
    'docker',
    'plugin',
    'api',
    'api/backend',
    'util',
  ],
  util: [],
};

/**
 * The composition root: main.ts and the pieces it runs (daemon/). It alone decides what runs and
 * serves: only main.ts imports daemon/, only the composition root imports api/backend/.
 */
const COMPOSITION_ROOT = ['main', 'daemon'];
/**
 * Size budget of main.ts: construction and start/stop order (it was 630 lines when it still held
 * the API's handlers, 321 when it still built the DNS resolver, the metrics and the cluster side).
 */
const MAIN_MAX_LINES = 200;

t.test('modules depend only in the directions DESIGN.md allows', async (t) => {
  for (const [mod, { local }] of imports) {
    if (mod === 'main') continue;
    const rules = allowed[mod];
    t.ok(rules, `module ${mod} is known to the rules`);
    for (const dep of local) t.ok(rules?.includes(dep), `${mod} -> ${dep}`);
  }
});

t.test(
  'only the composition root wires: only main.ts imports daemon/, only main.ts and daemon/ import api/backend/',
  async (t) => {
    for (const [mod, { local }] of imports) {
      if (mod !== 'main') t.notOk(local.has('daemon'), `${mod} -> daemon`);
      if (!COMPOSITION_ROOT.includes(mod)) t.notOk(local.has('api/backend'), `${mod} -> api/backend`);
    }
    t.ok(imports.get('main')?.local.has('daemon'), 'main -> daemon');
    t.ok(
      COMPOSITION_ROOT.some((mod) => imports.get(mod)?.local.has('api/backend')),
      'the composition root -> api/backend',
    );
  },
);

t.test('the composition root builds no API models: the handlers live in api/backend/', async (t) => {
  const main = readFileSync(join(SRC, 'main.ts'), 'utf8');
  t.notMatch(main, /from '\.\/api\/models\.js'/, 'main.ts does not import the API models');
  for (const file of files(join(SRC, 'daemon'))) {
    t.notMatch(
      readFileSync(file, 'utf8'),
      /from '\.\.\/api\/models\.js'/,
      `${relative(SRC, file)} does not import the API models`,
    );
  }
  // Construction and start/stop order fit in this; past it, domain work is creeping back in.
  const lines = main.split('\n').length;
  t.ok(lines <= MAIN_MAX_LINES, `main.ts has ${lines} lines (at most ${MAIN_MAX_LINES})`);
});

t.test('no import cycles between modules', async (t) => {
  const visiting = new Set<string>();
  const done = new Set<string>();
  const cycle: string[] = [];
  const visit = (m: string, path: string[]): boolean => {
    if (done.has(m)) return false;
    if (visiting.has(m)) {
      cycle.push(...path, m);
      return true;
    }
    visiting.add(m);
    for (const d of imports.get(m)?.local ?? []) if (visit(d, [...path, m])) return true;
    visiting.delete(m);
    done.add(m);
    return false;
  };
  for (const m of imports.keys()) if (visit(m, [])) break;
  t.same(cycle, [], 'no cycle');
});

/**
 * The concrete eBPF datapath (bpf-datapath.ts and the loader, Linux side and maps layer it
 * composes) is wired up by the composition root only: the endpoint, policy and cluster layers
 * program it through datapath.ts's interface and types.
 */
const CONCRETE_DATAPATH = [
  'datapath/bpf-datapath.ts',
  'datapath/bpf-loader.ts',
  'datapath/linux-node.ts',
  'datapath/datapath-maps.ts',
];
t.test('only main.ts and datapath/ import the concrete eBPF datapath', async (t) => {
  for (const file of files(SRC)) {
    const rel = relative(SRC, file);
    if (rel === 'main.ts' || rel.startsWith('datapath/')) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
      const target = relative(SRC, resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
      t.notOk(CONCRETE_DATAPATH.includes(target), `${rel} imports ${target}`);
    }
  }
});

t.test('each third-party package is imported from one module', async (t) => {
  const users = new Map<string, string[]>();
  for (const [mod, { packages }] of imports) for (const p of packages) users.set(p, [...(users.get(p) ?? []), mod]);
  for (const [pkg, mods] of users) {
    if (pkg === 'yaml')
      t.ok(
        mods.every((m) => ['config', 'policy', 'kvstore/etcd'].includes(m)),
        `yaml only where documented (${mods.join(', ')})`,
      );
    else t.equal(mods.length, 1, `${pkg}: ${mods.join(', ')}`);
  }
});

t.test('the whole tree type-checks (src, tests, benches)', async (t) => {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  let out = '';
  try {
    execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.check.json')], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: 'pipe',
    });
  } catch (err) {
    out = String((err as { stdout?: string }).stdout ?? err);
  }
  t.equal(out, '', 'tsc -p tsconfig.check.json reports nothing');
});
