/**
 * A datapath that records calls instead of touching the kernel, for unit tests of the layers
 * above it (the kernel is exercised by test/e2e). Links "exist" between create and remove.
 */
import type { Datapath, DatapathEndpoint, DatapathNetwork } from '../../src/datapath/datapath.js';

export class FakeDatapath implements Datapath {
  readonly name = 'fake';
  readonly links = new Map<string, DatapathEndpoint | (Omit<DatapathEndpoint, 'mac'> & { mac?: string })>();
  readonly gateways = new Set<string>();
  readonly calls: string[] = [];
  private macCounter = 0;

  async init(): Promise<void> {
    this.calls.push('init');
  }
  async addNetwork(network: DatapathNetwork): Promise<void> {
    this.calls.push(`addNetwork ${network.networkId}`);
    if (network.gateway) this.gateways.add(network.gateway);
  }
  async removeNetwork(network: DatapathNetwork, remaining: DatapathNetwork[]): Promise<void> {
    this.calls.push(`removeNetwork ${network.networkId}`);
    if (!remaining.some((n) => n.gateway === network.gateway)) this.gateways.delete(network.gateway);
  }
  async createEndpointLink(
    endpoint: Omit<DatapathEndpoint, 'mac'> & { mac?: string },
  ): Promise<{ mac: string; hostIfIndex: number }> {
    this.calls.push(`createEndpointLink ${endpoint.hostIfName}`);
    this.links.set(endpoint.hostIfName, endpoint);
    const mac = endpoint.mac ?? `02:00:00:00:00:${(++this.macCounter).toString(16).padStart(2, '0')}`;
    return { mac, hostIfIndex: 100 + this.macCounter };
  }
  async activateEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    this.calls.push(`activateEndpoint ${endpoint.hostIfName}`);
  }
  async updateEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    this.calls.push(`updateEndpoint ${endpoint.hostIfName} ${endpoint.identity}`);
  }
  async removeEndpoint(endpoint: DatapathEndpoint): Promise<void> {
    this.calls.push(`removeEndpoint ${endpoint.hostIfName}`);
    this.links.delete(endpoint.hostIfName);
  }
  async endpointLinkExists(endpoint: DatapathEndpoint): Promise<boolean> {
    return this.links.has(endpoint.hostIfName);
  }
  async cleanup(): Promise<void> {
    this.links.clear();
    this.gateways.clear();
  }
}
