/**
 * etcd's v3 JSON gateway reached with busybox wget from inside a lab host (there is no etcdctl
 * here): what the e2e tests use to look at, and tamper with, the keys the daemons write.
 * Keys and values travel base64-encoded, as the gateway wants them.
 */

/** Runs argv inside the lab host (DockerHost.exec). */
export type HostExec = (argv: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;

const b64 = (s: string) => Buffer.from(s).toString('base64');

/**
 * A client of one etcd's JSON gateway, through `exec`. With a `prefix` (the daemons'
 * `--kvstore-opt prefix`, `cilium/state/` by default) keys are given and returned as the daemons
 * name them, and live under the prefix in etcd; without one, it sees etcd's whole key space.
 */
export class EtcdGateway {
  constructor(
    private readonly exec: HostExec,
    private readonly url: string,
    private readonly prefix = '',
  ) {}

  /** POSTs `body` to `path` (e.g. /v3/kv/range) and parses the answer. */
  async call(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const r = await this.exec([
      'busybox',
      'wget',
      '-q',
      '-O',
      '-',
      '--header',
      'Content-Type: application/json',
      '--post-data',
      JSON.stringify(body),
      `${this.url}${path}`,
    ]);
    if (r.code !== 0) throw new Error(`etcd ${path}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  /** The value of one key, or undefined. */
  async get(key: string): Promise<string | undefined> {
    const r = (await this.call('/v3/kv/range', { key: b64(this.prefix + key) })) as { kvs?: Array<{ value: string }> };
    return r.kvs?.[0] ? Buffer.from(r.kvs[0].value, 'base64').toString() : undefined;
  }

  /** Keys under a prefix (not empty unless the gateway has a prefix). */
  async keys(prefix: string): Promise<string[]> {
    const end = Buffer.from(this.prefix + prefix);
    end[end.length - 1]! += 1;
    const r = (await this.call('/v3/kv/range', {
      key: b64(this.prefix + prefix),
      range_end: end.toString('base64'),
      keys_only: true,
    })) as { kvs?: Array<{ key: string }> };
    return (r.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString().slice(this.prefix.length));
  }

  /** Writes one key. */
  async put(key: string, value: string): Promise<void> {
    await this.call('/v3/kv/put', { key: b64(this.prefix + key), value: b64(value) });
  }

  /** Deletes one key. */
  async delete(key: string): Promise<void> {
    await this.call('/v3/kv/deleterange', { key: b64(this.prefix + key) });
  }
}
