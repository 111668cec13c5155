// Micro-benchmarks of the building blocks of a plugin call, run INSIDE a lab host (its netns, so
// the veths made here are the host's, never the machine's): `node micro.mjs <scratch-dir> [reps]`.
// Prints one JSON object on stdout. Every link it makes is named `bmx<hex>`/`bmy<hex>` and
// deleted before it exits (also on failure).
//
//  spawnIp        one `ip -json link show dev lo` through execFile, as src/datapath/link/ip-command.ts does
//  spawnBlock     how long the execFile() call itself blocks the event loop (fork + exec setup);
//                 spawnBlockBallast: the same after touching [ballast-MiB] of heap, so that the
//                 process is as big as the daemon (fork copies the page tables of all of it)
//  vethAsPlugin   CreateEndpoint + Join + DeleteEndpoint link work exactly as RoutingDatapath does
//                 it today: ip link add, 2 sysctl writes, ip link set up, 2x ip -json link show,
//                 ip route replace, ip link del (6 ip processes)
//  vethLean       the same result with 3 ip processes: `ip link add ... up` (no separate set up),
//                 ifindex/MAC from /sys/class/net instead of `ip -json link show`, route, del
//  sqliteFull / sqliteNormal   one put (own transaction) in a WAL SQLite file in <scratch-dir>,
//                 synchronous=FULL (what the daemon uses) vs NORMAL
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

const scratch = process.argv[2];
const reps = Number(process.argv[3] ?? 20);
const ballastMiB = Number(process.argv[4] ?? 0);
const labNetns = process.argv[5];
if (!scratch || !labNetns) throw new Error('usage: micro.mjs <scratch-dir> <reps> <ballast-MiB> /run/netns/cdl-<id>');
// It makes veths and routes: only ever inside the lab host's network namespace (DockerHost.exec).
const here = statSync('/proc/self/ns/net');
const lab = statSync(labNetns);
if (here.ino !== lab.ino || here.dev !== lab.dev)
  throw new Error(`micro.mjs must run inside ${labNetns} (use DockerHost.exec), not in this network namespace`);

const made = new Set();

function ip(args) {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 15_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`ip ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

function ms(t0) {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = (s.length - 1) / 2;
  return (s[Math.floor(m)] + s[Math.ceil(m)]) / 2;
}

function sysctl(path, value) {
  if (readFileSync(path, 'utf8').trim() !== value) writeFileSync(path, value);
}

async function sample(fn) {
  const out = [];
  for (let i = 0; i < reps; i++) out.push(await fn(i));
  return out;
}

function names() {
  const h = randomBytes(5).toString('hex');
  return { host: `bmx${h}`, peer: `bmy${h}` };
}

// 198.18.250.0/24 lies in the lab range; the /32 routes exist only inside this lab host.
const addr = (i) => `198.18.250.${(i % 250) + 2}`;

async function vethAsPlugin(i) {
  const n = names();
  const t0 = process.hrtime.bigint();
  made.add(n.host);
  await ip(['link', 'add', n.host, 'mtu', '1500', 'type', 'veth', 'peer', 'name', n.peer, 'mtu', '1500']);
  sysctl(`/proc/sys/net/ipv4/conf/${n.host}/proxy_arp`, '1');
  sysctl(`/proc/sys/net/ipv4/conf/${n.host}/rp_filter`, '0');
  await ip(['link', 'set', n.host, 'up']);
  await Promise.all([ip(['-json', 'link', 'show', 'dev', n.host]), ip(['-json', 'link', 'show', 'dev', n.peer])]);
  const create = ms(t0);
  const t1 = process.hrtime.bigint();
  await ip(['route', 'replace', `${addr(i)}/32`, 'dev', n.host, 'scope', 'link']);
  const join = ms(t1);
  const t2 = process.hrtime.bigint();
  await ip(['link', 'del', n.host]);
  made.delete(n.host);
  const del = ms(t2);
  return { create, join, del, total: ms(t0) };
}

async function vethLean(i) {
  const n = names();
  const t0 = process.hrtime.bigint();
  made.add(n.host);
  await ip(['link', 'add', n.host, 'mtu', '1500', 'up', 'type', 'veth', 'peer', 'name', n.peer, 'mtu', '1500']);
  sysctl(`/proc/sys/net/ipv4/conf/${n.host}/proxy_arp`, '1');
  sysctl(`/proc/sys/net/ipv4/conf/${n.host}/rp_filter`, '0');
  const ifindex = Number(readFileSync(`/sys/class/net/${n.host}/ifindex`, 'utf8'));
  const mac = readFileSync(`/sys/class/net/${n.peer}/address`, 'utf8').trim();
  const up = (Number(readFileSync(`/sys/class/net/${n.host}/flags`, 'utf8').trim()) & 1) === 1;
  if (!(ifindex > 0) || !/^[0-9a-f:]{17}$/.test(mac) || !up)
    throw new Error(`lean veth ${n.host}: ifindex ${ifindex}, mac ${mac}, up ${up}`);
  const create = ms(t0);
  const t1 = process.hrtime.bigint();
  await ip(['route', 'replace', `${addr(i)}/32`, 'dev', n.host, 'scope', 'link']);
  const join = ms(t1);
  const t2 = process.hrtime.bigint();
  await ip(['link', 'del', n.host]);
  made.delete(n.host);
  const del = ms(t2);
  return { create, join, del, total: ms(t0) };
}

function sqlite(sync) {
  const dir = mkdtempSync(join(scratch, 'micro-sqlite-'));
  try {
    const db = new DatabaseSync(join(dir, 'kv.db'));
    db.exec('PRAGMA journal_mode = WAL');
    db.exec(`PRAGMA synchronous = ${sync}`);
    db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, rev INTEGER NOT NULL) WITHOUT ROWID');
    const put = db.prepare(
      'INSERT INTO kv (key, value, rev) VALUES (?, ?, ?) ON CONFLICT(key) ' +
        'DO UPDATE SET value = excluded.value, rev = excluded.rev',
    );
    const value = JSON.stringify({ pad: 'x'.repeat(500) });
    const out = [];
    for (let i = 0; i < Math.max(reps * 3, 30); i++) {
      const t0 = process.hrtime.bigint();
      db.exec('BEGIN IMMEDIATE');
      put.run(`k/${i % 7}`, value, i);
      db.exec('COMMIT');
      out.push(ms(t0));
    }
    db.close();
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = {};
try {
  await ip(['-json', 'link', 'show', 'dev', 'lo']); // warm the page cache
  const spawnTimes = async () => {
    const total = [];
    const block = [];
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      let blocked = 0;
      await new Promise((resolve, reject) => {
        execFile('ip', ['-json', 'link', 'show', 'dev', 'lo'], { timeout: 15_000 }, (err) =>
          err ? reject(err) : resolve(),
        );
        blocked = ms(t0);
      });
      total.push(ms(t0));
      block.push(blocked);
    }
    return { total: median(total), block: median(block) };
  };
  const small = await spawnTimes();
  result.spawnIp = small.total;
  result.spawnBlock = small.block;
  result.rssMiB = process.memoryUsage().rss / 2 ** 20;
  if (ballastMiB > 0) {
    // Small objects on the V8 heap plus Buffers, every page touched: what a long-running daemon has.
    const ballast = [];
    for (let i = 0; i < ballastMiB / 2; i++) ballast.push(Buffer.alloc(2 ** 20, 1));
    const objs = Array.from({ length: ballastMiB * 2_000 }, (_, i) => ({ i, s: `x${i}` }));
    const big = await spawnTimes();
    result.ballastRssMiB = process.memoryUsage().rss / 2 ** 20;
    result.spawnIpBallast = big.total;
    result.spawnBlockBallast = big.block;
    if (ballast.length + objs.length < 0) throw new Error('unreachable');
  }
  for (const [name, fn] of [
    ['vethAsPlugin', vethAsPlugin],
    ['vethLean', vethLean],
  ]) {
    await fn(0); // warm-up
    const rows = await sample(fn);
    result[name] = Object.fromEntries(
      ['create', 'join', 'del', 'total'].map((k) => [k, median(rows.map((r) => r[k]))]),
    );
  }
  result.sqliteFull = median(sqlite('FULL'));
  result.sqliteNormal = median(sqlite('NORMAL'));
  result.reps = reps;
} finally {
  for (const dev of made) await ip(['link', 'del', dev]).catch(() => {});
}
process.stdout.write(`${JSON.stringify(result)}\n`);
