/**
 * Prometheus metrics (prom-client), with Cilium's metric names where they exist. This is the only
 * module that imports prom-client. Gauges whose value lives elsewhere (endpoints by state,
 * identities, policies, BPF counters) are filled by collect callbacks registered by main.ts, so
 * scraping reads the current state instead of a copy kept in sync by hand.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The registry and every metric the daemon exports. */
export class Metrics {
  readonly registry = new Registry();

  /** `cilium_endpoint{state}`: endpoints on this node by lifecycle state. */
  readonly endpoints = new Gauge({
    name: 'cilium_endpoint',
    help: 'Number of endpoints managed by this agent, by state',
    labelNames: ['state'],
    registers: [this.registry],
  });
  /** `cilium_identity`: identities known to this node. */
  readonly identities = new Gauge({
    name: 'cilium_identity',
    help: 'Number of identities currently allocated',
    registers: [this.registry],
  });
  /** `cilium_policy`: policy rules loaded. */
  readonly policies = new Gauge({
    name: 'cilium_policy',
    help: 'Number of policies currently loaded',
    registers: [this.registry],
  });
  /** `cilium_policy_max_revision`: highest policy revision. */
  readonly policyMaxRevision = new Gauge({
    name: 'cilium_policy_max_revision',
    help: 'Highest policy revision number in the agent',
    registers: [this.registry],
  });
  /** `cilium_drop_count_total{reason,direction}`: packets dropped by the datapath. */
  readonly drops = new Gauge({
    name: 'cilium_drop_count_total',
    help: 'Total dropped packets, tagged by drop reason and ingress/egress direction',
    labelNames: ['reason', 'direction'],
    registers: [this.registry],
  });
  /** `cilium_forward_count_total{direction}`: packets forwarded by the datapath. */
  readonly forwards = new Gauge({
    name: 'cilium_forward_count_total',
    help: 'Total forwarded packets, tagged by ingress/egress direction',
    labelNames: ['direction'],
    registers: [this.registry],
  });
  /** `cilium_endpoint_regeneration_time_stats_seconds`: time to regenerate an endpoint's policy. */
  readonly regenerationSeconds = new Histogram({
    name: 'cilium_endpoint_regeneration_time_stats_seconds',
    help: 'Endpoint regeneration time stats',
    labelNames: ['scope'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  /** `cilium_kvstore_operations_duration_seconds{action,outcome}`: store call latency. */
  readonly kvstoreSeconds = new Histogram({
    name: 'cilium_kvstore_operations_duration_seconds',
    help: 'Duration in seconds of kvstore operations',
    labelNames: ['action', 'outcome'],
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });
  /** `cilium_docker_plugin_calls_total{call,outcome}`: Docker plugin API calls. */
  readonly pluginCalls = new Counter({
    name: 'cilium_docker_plugin_calls_total',
    help: 'Docker plugin API calls by method and outcome',
    labelNames: ['call', 'outcome'],
    registers: [this.registry],
  });
  /** `cilium_kvstore_quorum_errors_total`-like health: 1 when the store answers. */
  readonly kvstoreHealthy = new Gauge({
    name: 'cilium_kvstore_healthy',
    help: '1 when the kvstore answers, 0 during an outage',
    registers: [this.registry],
  });

  private readonly collectors: Array<() => Promise<void> | void> = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Registers a callback that refreshes gauges right before each scrape. */
  onCollect(fn: () => Promise<void> | void): void {
    this.collectors.push(fn);
  }

  /** Prometheus text exposition of every metric (after running the collectors). */
  async render(): Promise<string> {
    for (const c of this.collectors) await c();
    return this.registry.metrics();
  }

  /** Content type of `render()`. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Serves `GET /metrics` on `host:port`; resolves once listening. */
export async function serveMetrics(metrics: Metrics, address: string): Promise<Server> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) =>
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.unref();
  return server;
}
