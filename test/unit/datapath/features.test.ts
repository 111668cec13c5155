/**
 * Kernel feature probe and the start-time refusal of a tunnel the kernel lacks.
 *
 * The probe runs inside a throw-away network namespace (the daemon's own, started there), so the
 * machine's namespace never sees a probe device. On this kernel (vxlan yes, geneve no) the daemon
 * asked for geneve must exit at once with ERR_GENEVE_UNSUPPORTED, naming the alternative, and
 * leave the namespace exactly as it found it (only lo): never a half-configured host.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { requireTunnelSupport, type KernelFeatures } from '../../../src/datapath/features.js';
import { GeneveUnsupportedError, VxlanUnsupportedError } from '../../../src/util/errors.js';

const none: KernelFeatures = {
  vxlanExternal: true,
  geneveExternal: false,
  detail: { geneve: 'Error: Unknown device type.' },
};

t.test('geneve on a kernel without it: typed error naming the feature and the alternative', async (t) => {
  const err = t.throws(() => requireTunnelSupport('geneve', none)) as GeneveUnsupportedError;
  t.ok(err instanceof GeneveUnsupportedError);
  t.equal(err.code, 'ERR_GENEVE_UNSUPPORTED');
  t.equal(err.kind, 'Unsupported');
  t.match(err.message, /geneve external/);
  t.match(err.message, /Unknown device type/);
  t.match(err.message, /--tunnel vxlan/);
  t.doesNotThrow(() => requireTunnelSupport('vxlan', none));
  const noVxlan: KernelFeatures = { vxlanExternal: false, geneveExternal: false, detail: {} };
  t.throws(() => requireTunnelSupport('vxlan', noVxlan), VxlanUnsupportedError);
  t.match((t.throws(() => requireTunnelSupport('geneve', noVxlan)) as Error).message, /--tunnel disabled/);
});

const ROOT = new URL('../../../', import.meta.url).pathname;
const skip =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces)'
    : !existsSync(join(ROOT, 'dist/main.js'))
      ? 'dist/ not built (make build-ts)'
      : false;

t.test('the daemon refuses --tunnel geneve at start and configures nothing', { skip }, async (t) => {
  const ns = `cdfeat-${randomBytes(3).toString('hex')}`;
  const state = mkdtempSync(join(tmpdir(), 'cd-features-'));
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => {
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(state, { recursive: true, force: true });
  });
  const geneveProbe = spawnSync('ip', ['-n', ns, 'link', 'add', 'probe0', 'type', 'geneve', 'external'], {
    encoding: 'utf8',
  });
  if (geneveProbe.status === 0) {
    t.comment('this kernel has geneve: nothing to refuse');
    return;
  }
  const r = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      ns,
      join(ROOT, 'bin/cilium-docker'),
      '--tunnel',
      'geneve',
      '--state-dir',
      state,
      '--plugin-socket',
      join(state, 'cilium.sock'),
      '--api-socket',
      join(state, 'api.sock'),
      '--bpf-root',
      '/sys/fs/bpf/cdfeat-unused',
      '--metrics-address',
      '',
      '--docker-host',
      `unix://${join(state, 'none.sock')}`,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.equal(r.status, 1, 'exit status 1');
  t.match(r.stderr, /ERR_GENEVE_UNSUPPORTED/, 'the code in the log');
  t.match(r.stderr, /--tunnel vxlan/, 'the alternative');
  const links = JSON.parse(execFileSync('ip', ['-n', ns, '-json', 'link', 'show'], { encoding: 'utf8' })) as Array<{
    ifname: string;
  }>;
  t.same(
    links.map((l) => l.ifname),
    ['lo'],
    'no device left behind (no cilium_host, no tunnel, no probe)',
  );
  t.notOk(existsSync(join(state, 'kvstore.db')), 'the store was never opened');
  t.notOk(existsSync('/sys/fs/bpf/cdfeat-unused'), 'nothing pinned');
});
