/**
 * PolicyCompiler.compileInSlices: the same policy as compile(), with a pause after every slice of
 * about COMPILE_SLICE entries (the daemon yields to its event loop there).
 */
import t from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import { cidrIdentityLabels } from '../../../src/policy/cidr.js';
import { COMPILE_SLICE, PolicyCompiler } from '../../../src/policy/compile.js';
import { PolicyRepository } from '../../../src/policy/repository.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';

const N = 10_000;
const address = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

t.test('a policy of 10 000 CIDR peers: the same entries, compiled in slices', async (t) => {
  const repo = new PolicyRepository();
  repo.import(
    JSON.stringify({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'many' },
      spec: {
        endpointSelector: { matchLabels: { app: 'web' } },
        egress: [
          {
            toCIDR: Array.from({ length: N }, (_, i) => `${address(i)}/32`),
            toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
          },
          { toEntities: ['host'] },
        ],
        ingress: [{ fromEndpoints: [{ matchLabels: { app: 'db' } }] }],
      },
    }),
  );
  const cache = new SelectorCache([
    [300, LabelSet.parse(['container:app=web'])],
    [301, LabelSet.parse(['container:app=db'])],
  ]);
  cache.addIdentities(
    Array.from({ length: N }, (_, i) => [16_777_216 + i, cidrIdentityLabels(`${address(i)}/32`)] as const),
  );
  const whole = new PolicyCompiler(repo, cache).compile(300);
  let pauses = 0;
  const sliced = await new PolicyCompiler(repo, cache).compileInSlices(300, undefined, async () => {
    pauses++;
  });
  t.equal(whole.entries.length, N + 3, 'one entry per CIDR identity, the host, db and allow-localhost');
  t.same(sliced, whole, 'compileInSlices gives what compile gives');
  t.ok(pauses >= Math.floor(N / COMPILE_SLICE), `paused ${pauses} times`);
});
