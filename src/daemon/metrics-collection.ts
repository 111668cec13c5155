/**
 * What `/metrics` reports at each scrape (util/metrics.ts names the series): endpoints by state,
 * allocated identities, the store's health, policies, and the datapath's forward and drop
 * counters.
 */
import type { MetricsSample } from '../datapath/bpf/maps.js';
import { dropReasonName } from '../datapath/bpf/abi.js';
import type { EndpointManager } from '../endpoint/endpoint-manager.js';
import type { PolicyEngine } from '../endpoint/policy-engine.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import type { InstrumentedKvStore } from '../kvstore/instrumented-store.js';
import type { Metrics } from '../util/metrics.js';

/** The parts a scrape reads. */
export interface MetricsSources {
  endpoints: EndpointManager;
  identities: IdentityAllocator;
  store: Pick<InstrumentedKvStore, 'reachable'>;
  policy: PolicyEngine;
  datapath: { metricsSamples(): Promise<MetricsSample[]> };
}

/** Registers the collection on `metrics`: every scrape reads the sources afresh. */
export function collectMetrics(
  metrics: Metrics,
  { endpoints, identities, store, policy, datapath }: MetricsSources,
): void {
  metrics.onCollect(async () => {
    metrics.endpoints.reset();
    for (const e of endpoints.listEndpoints()) metrics.endpoints.inc({ state: e.state });
    metrics.identities.set((await identities.list().catch(() => [])).filter((i) => !i.reserved).length);
    metrics.kvstoreHealthy.set(store.reachable ? 1 : 0);
    metrics.policies.set(policy.policyCount);
    metrics.policyMaxRevision.set(policy.revision);
    metrics.drops.reset();
    metrics.forwards.reset();
    for (const sample of await datapath.metricsSamples()) {
      if (sample.reason === 0)
        metrics.forwards.inc({ direction: sample.direction.toUpperCase() }, Number(sample.packets));
      else
        metrics.drops.inc(
          { reason: dropReasonName(sample.reason), direction: sample.direction.toUpperCase() },
          Number(sample.packets),
        );
    }
  });
}
