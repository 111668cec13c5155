/**
 * Identity spoofing through label text, end to end (issue 15, item 1): a container label whose
 * value carries the canonical form's separators (`app=z;reserved:host`,
 * `app=x;container:role=admin`), the same through an image LABEL, and a 1 MB label key. None may
 * give the container a `reserved:` label, another container's identity, or a policy's admission;
 * the oversized key stays out of the identity. One lab host, one daemon, one network.
 */
import t from 'tap';
import { request } from 'node:http';
import { startDockerHost, type DockerHost } from '../lab/docker-host.js';
import { ensureBusyboxImage } from '../lab/busybox-image.js';
import { requireRoot } from '../lab/preconditions.js';
import { CiliumDaemon, eventually } from '../support/cilium-daemon.js';
import type { EndpointModel, IdentityModel } from '../../src/api/models.js';

if (!requireRoot(t)) process.exit(process.env.CI === 'true' ? 1 : 0);

let host: DockerHost;
let daemon: CiliumDaemon;
const ip: Record<string, string> = {};
const NETWORK = 'spoof';

async function docker(args: string[]): Promise<string> {
  const r = await host.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n--- daemon log ---\n${daemon.process?.logTail(20)}`,
    );
  return r.stdout.trim();
}

/** HTTP GET from a container to the victim; true if the page came back. */
async function reaches(from: string, to: string): Promise<boolean> {
  const r = await host.docker(['exec', from, 'timeout', '3', 'wget', '-q', '-O', '-', `http://${ip[to]}:80/passwd`], {
    timeoutMs: 20_000,
  });
  return r.code === 0 && r.stdout.includes('root');
}

async function readyEndpoint(name: string): Promise<EndpointModel> {
  return eventually(
    async () => {
      const eps = await daemon.cliJson<EndpointModel[]>(['endpoint', 'list']);
      const e = eps.find((x) => x.containerName === name);
      return e?.state === 'ready' ? e : undefined;
    },
    30_000,
    `${name} ready`,
  );
}

/** One Docker Engine API call on the lab host's socket (for what the CLI's argv cannot carry). */
function engine(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath: host.socketPath,
        path,
        method,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.end(payload);
  });
}

const SERVE = ['sh', '-c', 'httpd -p 80 -h /etc; exec sleep 100000'];

t.before(async () => {
  host = await startDockerHost(t);
  await ensureBusyboxImage(host, 'bb');
  daemon = new CiliumDaemon(host);
  await daemon.start();
  await docker([
    'network',
    'create',
    '-d',
    'cilium',
    '--ipam-driver',
    'cilium',
    '--subnet',
    '198.18.121.0/24',
    NETWORK,
  ]);
  // An image whose LABEL carries the separator (`docker build` without a registry: commit a container).
  await docker(['create', '--name', 'template', 'bb', 'true']);
  await docker(['commit', '--change', 'LABEL vendor="acme;reserved:host"', 'template', 'bb-spoof']);
  const start = async (name: string, labels: string[], image = 'bb') => {
    await docker([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      NETWORK,
      ...labels.flatMap((l) => ['-l', l]),
      image,
      ...SERVE,
    ]);
    ip[name] = await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`, name]);
  };
  await start('victim', ['app=victim']);
  await start('plain', ['app=z']);
  await start('spoof-host', ['app=z;reserved:host']);
  await start('admin', ['app=x', 'role=admin']);
  await start('spoof-admin', ['app=x;container:role=admin']);
  await start('spoof-image', ['app=img'], 'bb-spoof');
  for (const c of Object.keys(ip)) await readyEndpoint(c);
  // Admitted from the host and from role=admin only.
  const yaml = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: victim-from-host-and-admin }
spec:
  endpointSelector: { matchLabels: { app: victim } }
  ingress:
  - fromEntities: [ host ]
  - fromEndpoints: [ { matchLabels: { role: admin } } ]
`;
  const imported = await daemon.cli(['policy', 'import', '-', '-o', 'json'], yaml);
  if (imported.code !== 0) throw new Error(`policy import failed: ${imported.stderr}`);
  const revision = (JSON.parse(imported.stdout) as { revision: number }).revision;
  const waited = await daemon.cli(['policy', 'wait', String(revision), '--timeout', '20s']);
  if (waited.code !== 0) throw new Error(`policy wait failed: ${waited.stderr}`);
});

t.test('the policy admits the host and role=admin, refuses others (the checks below can fail)', async (t) => {
  const fromHost = await host.exec(
    ['timeout', '3', 'busybox', 'wget', '-q', '-O', '-', `http://${ip.victim}:80/passwd`],
    { timeoutMs: 20_000 },
  );
  t.equal(fromHost.code, 0, 'the host entity reaches the victim');
  t.ok(await reaches('admin', 'victim'), 'app=x,role=admin reaches the victim');
  t.notOk(await reaches('plain', 'victim'), 'app=z is refused');
});

t.test("-l 'app=z;reserved:host' gets no reserved:host label and no admission", async (t) => {
  const ep = await readyEndpoint('spoof-host');
  t.notOk(
    ep.labels.some((l) => l.startsWith('reserved:')),
    `endpoint labels ${JSON.stringify(ep.labels)} hold no reserved: label`,
  );
  t.ok(ep.labels.includes('container:app=z;reserved:host'), 'the whole text is one container label value');
  const id = await daemon.cliJson<IdentityModel>(['identity', 'get', String(ep.identity)]);
  t.notOk(id.reserved, 'an allocated identity');
  t.notOk(
    id.labels.some((l) => l.startsWith('reserved:')),
    `identity ${ep.identity} labels ${JSON.stringify(id.labels)} hold no reserved: label`,
  );
  t.notOk(await reaches('spoof-host', 'victim'), 'refused by the fromEntities: [host] rule');
});

t.test("-l 'app=x;container:role=admin' is not {app=x, role=admin}", async (t) => {
  const spoof = await readyEndpoint('spoof-admin');
  const admin = await readyEndpoint('admin');
  t.not(spoof.identity, admin.identity, 'a different identity from the container labelled app=x and role=admin');
  const id = await daemon.cliJson<IdentityModel>(['identity', 'get', String(spoof.identity)]);
  t.notOk(
    id.labels.some((l) => l.startsWith('container:role=')),
    `identity labels ${JSON.stringify(id.labels)} hold no role label`,
  );
  t.notOk(await reaches('spoof-admin', 'victim'), 'refused by the role=admin rule');
});

t.test('an image LABEL vendor="acme;reserved:host" gets no reserved:host label and no admission', async (t) => {
  const ep = await readyEndpoint('spoof-image');
  t.ok(ep.labels.includes('container:vendor=acme;reserved:host'), 'the image label is one container label');
  const id = await daemon.cliJson<IdentityModel>(['identity', 'get', String(ep.identity)]);
  t.notOk(
    id.labels.some((l) => l.startsWith('reserved:')),
    `identity labels ${JSON.stringify(id.labels)} hold no reserved: label`,
  );
  t.notOk(await reaches('spoof-image', 'victim'), 'refused by the fromEntities: [host] rule');
});

t.test('every allocated identity is free of reserved: labels', async (t) => {
  const ids = await daemon.cliJson<IdentityModel[]>(['identity', 'list']);
  const bad = ids.filter((i) => !i.reserved && i.labels.some((l) => l.startsWith('reserved:')));
  t.same(bad, [], 'no allocated identity carries a reserved: label');
});

t.test('a 1 MB label key and a key with a space stay out of the identity; the container still runs', async (t) => {
  const hugeKey = `k${'x'.repeat(1 << 20)}`;
  const created = await engine('POST', '/containers/create?name=big-key', {
    Image: 'bb',
    Cmd: SERVE,
    Labels: { [hugeKey]: 'v', 'has space': '1', app: 'big' },
    HostConfig: { NetworkMode: NETWORK },
  });
  t.equal(created.status, 201, `dockerd accepted the container (${created.text.slice(0, 200)})`);
  const started = await engine('POST', '/containers/big-key/start');
  t.equal(started.status, 204, `started (${started.text.slice(0, 200)})`);
  const ep = await readyEndpoint('big-key');
  t.same(
    ep.labels,
    ['container:app=big', `docker:network=${NETWORK}`],
    'only the valid label is in the endpoint labels',
  );
  const id = await daemon.cliJson<IdentityModel>(['identity', 'get', String(ep.identity)]);
  t.same(id.labels, ['container:app=big', `docker:network=${NETWORK}`], 'and in its identity');
  t.match(daemon.log(), /ignored container labels/, 'the daemon logged the ignored labels');
});
