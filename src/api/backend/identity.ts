/**
 * `GET /v1/identity[/:id]` (`cilium identity list|get`): the reserved identities and those in
 * the store, each with the nodes holding a reference to it (Cilium's daemon/cmd/identity.go).
 */
import type { Identity, IdentityAllocator } from '../../identity/allocator.js';
import type { IdentityModel } from '../models.js';
import type { AgentBackend } from '../server.js';

/** What the identity handlers read. */
export type IdentitySource = Pick<IdentityAllocator, 'list' | 'get' | 'referencingNodes'>;

/**
 * One identity as the API shows it; `nodes` (identity -> referencing nodes) is undefined when the
 * reference keys could not be read, and reserved identities have no references in the store.
 */
function identityModel(i: Identity, nodes: ReadonlyMap<number, string[]> | undefined): IdentityModel {
  return {
    id: i.id,
    labels: i.labels.toStrings(),
    reserved: i.reserved,
    localReferences: i.localReferences,
    ...(nodes && !i.reserved && { nodes: nodes.get(i.id) ?? [] }),
  };
}

/** The identity handlers of the agent API. */
export function identityHandlers(identities: IdentitySource): Pick<AgentBackend, 'listIdentities' | 'getIdentity'> {
  return {
    async listIdentities() {
      const nodes = await identities.referencingNodes().catch(() => undefined);
      return (await identities.list()).map((i) => identityModel(i, nodes));
    },
    async getIdentity(id) {
      const i = await identities.get(id);
      if (!i) return undefined;
      const nodes = i.reserved ? undefined : await identities.referencingNodes(i.labels).catch(() => undefined);
      return identityModel(i, nodes);
    },
  };
}
