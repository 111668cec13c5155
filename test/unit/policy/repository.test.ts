import t from 'tap';
import { LabelSet } from '../../../src/identity/labels.js';
import { affectedIdentities, INITIAL_POLICY_REVISION, PolicyRepository } from '../../../src/policy/repository.js';
import { SelectorCache } from '../../../src/policy/selector-cache.js';
import { ruleCookie } from '../../../src/policy/policy-entries.js';

const policy = (name: string, app: string, extra = '') => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      app: ${app}
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: client
${extra}`;

const identities = new SelectorCache([
  [256, LabelSet.parse(['container:app=web'])],
  [257, LabelSet.parse(['container:app=web', 'container:v=2'])],
  [258, LabelSet.parse(['container:app=db'])],
  [259, LabelSet.parse(['container:app=client'])],
]);

t.test('revisions start at 1 and grow by one per change', async (t) => {
  const repo = new PolicyRepository();
  t.equal(repo.revision, INITIAL_POLICY_REVISION);
  t.equal(repo.revision, 1);
  const first = repo.import(policy('web', 'web'));
  t.equal(first.revision, 2);
  t.same(first.imported, ['web']);
  t.equal(
    repo.import(`${policy('db', 'db')}---\n${policy('web', 'web')}`).revision,
    3,
    'one import of two documents is one change',
  );
  t.equal(repo.delete('db').revision, 4);
  t.equal(repo.deleteAll().revision, 5);
  t.equal(repo.deleteAll().revision, 5, 'deleting from an empty repository changes nothing');
  t.equal(repo.revision, 5);
});

t.test('import replaces a policy of the same name; get lists by name', async (t) => {
  const repo = new PolicyRepository();
  repo.import(`${policy('web', 'web')}---\n${policy('alpha', 'db')}`);
  t.same(
    repo.get().map((p) => p.name),
    ['alpha', 'web'],
  );
  t.same(
    repo.rules().map((r) => r.policyName),
    ['alpha', 'web'],
    'rules ordered by policy name',
  );
  const change = repo.import(policy('web', 'db'));
  t.equal(repo.size, 2);
  const [web] = repo.get('web');
  t.equal(web!.revision, change.revision, 'each policy records the revision it was imported at');
  t.equal(web!.policy.rules[0]!.endpointSelector.key, 'any:app=db');
  t.same(repo.get('alpha')[0]!.revision, 2);
});

t.test('errors: unknown names, invalid input leaves the repository unchanged', async (t) => {
  const repo = new PolicyRepository();
  repo.import(policy('web', 'web'));
  t.throws(() => repo.delete('nope'), { code: 'ERR_NOT_FOUND', message: /policy "nope" not found/ });
  t.throws(() => repo.get('nope'), { code: 'ERR_NOT_FOUND' });
  t.equal(repo.revision, 2, 'a failed delete does not bump the revision');
  t.throws(() => repo.import(`${policy('web', 'db')}---\nkind: Nope\n`), { code: 'ERR_POLICY_INVALID' });
  t.equal(
    repo.get('web')[0]!.policy.rules[0]!.endpointSelector.key,
    'any:app=web',
    'atomic: valid documents of a failed import are not applied',
  );
  t.equal(repo.revision, 2);
  t.throws(() => repo.import([]), { code: 'ERR_POLICY_INVALID' });
});

t.test('affected identities: endpoints selected by old and new versions of changed rules', async (t) => {
  const repo = new PolicyRepository();
  const added = repo.import(policy('p', 'web'));
  t.same(affectedIdentities(added, identities), [256, 257], 'peers (client) are not affected');
  const moved = repo.import(policy('p', 'db'));
  t.same(affectedIdentities(moved, identities), [256, 257, 258], 'old selection (web) and new (db)');
  const unchangedOther = repo.import(policy('q', 'client'));
  t.same(affectedIdentities(unchangedOther, identities), [259]);
  t.same(affectedIdentities(repo.delete('p'), identities), [258]);
  t.same(affectedIdentities(repo.deleteAll(), identities), [259]);
});

t.test('JSON round trip for persistence', async (t) => {
  const repo = new PolicyRepository();
  repo.import(policy('web', 'web'));
  repo.import(policy('db', 'db', '  egress:\n  - toCIDRSet:\n    - cidr: 10.0.0.0/8\n      except: [10.1.0.0/16]\n'));
  const json = JSON.parse(JSON.stringify(repo.toJSON()));
  t.same(json.revision, 3);
  t.same(
    json.policies.map((p: { name: string; revision: number }) => [p.name, p.revision]),
    [
      ['db', 3],
      ['web', 2],
    ],
  );
  const restored = PolicyRepository.fromJSON(json);
  t.equal(restored.revision, 3);
  t.same(restored.toJSON(), repo.toJSON());
  t.same(restored.rules(), repo.rules(), 'same compiled rule form');
  t.equal(restored.import(policy('x', 'x')).revision, 4, 'revisions continue after a restore');
  t.throws(() => PolicyRepository.fromJSON({ revision: 0, policies: [] }), { code: 'ERR_POLICY_INVALID' });
  t.throws(
    () => PolicyRepository.fromJSON({ revision: 2, policies: [{ name: 'a', revision: 2, document: { kind: 'x' } }] }),
    { code: 'ERR_POLICY_INVALID' },
  );
  t.throws(() => PolicyRepository.fromJSON(null), { code: 'ERR_POLICY_INVALID' });
});

t.test('cookies name policies', async (t) => {
  const repo = new PolicyRepository();
  repo.import(`${policy('web', 'web')}---\n${policy('db', 'db')}`);
  t.equal(repo.policyForCookie(ruleCookie('db')), 'db');
  t.equal(repo.policyForCookie(ruleCookie('nope')), undefined);
  t.not(ruleCookie('web'), ruleCookie('db'));
  t.ok(ruleCookie('') > 0, 'cookies are never 0 (0 marks reserved entries)');
});
