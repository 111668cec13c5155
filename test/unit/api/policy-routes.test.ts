/**
 * Agent API policy routes through the typed client: import, get, delete, trace (with its request
 * validation) and wait, and that daemon errors keep their code and message.
 */
import t from 'tap';
import { CiliumDockerError } from '../../../src/util/errors.js';
import { rawRequest, startApi } from './fixtures/api-harness.js';

const webPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web-policy
spec:
  endpointSelector:
    matchLabels: {app: web}
`;

const dbPolicy = webPolicy.replace('web-policy', 'db-policy');

t.test('POST /v1/policy imports the text and returns the new revision', async (t) => {
  const { client, backend } = await startApi(t);
  t.same(await client.importPolicy(webPolicy), { revision: 2 });
  t.same(backend.importedTexts, [webPolicy], 'the text reaches the backend unchanged');
  t.same(await client.importPolicy(dbPolicy), { revision: 3 });
});

t.test('POST /v1/policy refuses bodies without a text and passes validation errors on', async (t) => {
  const { client, socketPath, backend } = await startApi(t);
  for (const body of ['{}', '{"text": 5}', '[]', '"apiVersion: v2"', '{"text": "  "}']) {
    const reply = await rawRequest(socketPath, 'POST', '/v1/policy', body);
    t.equal(reply.status, 400, `body ${body}`);
    t.equal(JSON.parse(reply.text).error.code, 'ERR_BAD_REQUEST', `body ${body}`);
  }
  const notJson = await rawRequest(socketPath, 'POST', '/v1/policy', '{"text": ');
  t.equal(notJson.status, 400);
  t.match(JSON.parse(notJson.text).error.message, /not valid JSON/);
  t.same(backend.importedTexts, [], 'nothing invalid reached the backend');

  const err = await client
    .importPolicy(
      webPolicy.replace(
        'matchLabels: {app: web}',
        'matchLabels: {app: web}\n  ingress:\n  - toPorts:\n    - ports: [{port: http}]',
      ),
    )
    .catch((e: unknown) => e);
  t.ok(err instanceof CiliumDockerError);
  t.match(err, { kind: 'BadRequest', code: 'ERR_POLICY_INVALID', message: /"http" is not a port number/ });
});

t.test('GET /v1/policy lists every policy, GET /v1/policy/:name one of them', async (t) => {
  const { client } = await startApi(t);
  await client.importPolicy(`${webPolicy}---\n${dbPolicy}`);
  const all = await client.getPolicy();
  t.equal(all.revision, 2);
  t.same(
    all.policies.map((p) => (p as { metadata: { name: string } }).metadata.name),
    ['web-policy', 'db-policy'],
  );
  const one = await client.getPolicy('db-policy');
  t.same(one.policies, [{ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'db-policy' } }]);
  await t.rejects(client.getPolicy('nope'), {
    code: 'ERR_NOT_FOUND',
    kind: 'NotFound',
    message: 'policy "nope" not found',
  });
});

t.test('DELETE /v1/policy/:name deletes one policy, DELETE /v1/policy all of them', async (t) => {
  const { client, backend } = await startApi(t);
  await client.importPolicy(`${webPolicy}---\n${dbPolicy}`);
  t.same(await client.deletePolicy('web-policy'), { revision: 3 });
  t.same([...backend.policies.keys()], ['db-policy']);
  await t.rejects(client.deletePolicy('web-policy'), { code: 'ERR_NOT_FOUND' });
  t.same(await client.deleteAllPolicies(), { revision: 4 });
  t.equal(backend.policies.size, 0);
});

t.test('an empty policy name never deletes every policy', async (t) => {
  const { client, backend, socketPath } = await startApi(t);
  await client.importPolicy(webPolicy);
  await t.rejects(client.deletePolicy(''), { code: 'ERR_BAD_REQUEST', message: /empty policy name/ });
  const reply = await rawRequest(socketPath, 'DELETE', '/v1/policy/');
  t.equal(reply.status, 400);
  t.match(JSON.parse(reply.text).error.message, /empty policy name; to delete every policy use DELETE \/v1\/policy/);
  t.same([...backend.policies.keys()], ['web-policy']);
  t.equal(backend.revision, 2);
});

t.test('GET and DELETE /v1/policy?labels=... select by labels; an empty labels query deletes nothing', async (t) => {
  const { client, backend, socketPath } = await startApi(t);
  await client.importPolicy(`${webPolicy}---\n${dbPolicy}`);
  t.same((await client.getPolicyByLabels(['name=db-policy'])).policies.length, 1);
  t.same((await client.getPolicyByLabels(['name=none'])).policies, []);
  for (const query of ['labels=', 'labels=&labels=name%3Dweb-policy']) {
    const reply = await rawRequest(socketPath, 'DELETE', `/v1/policy?${query}`);
    t.equal(reply.status, 400, `DELETE /v1/policy?${query} refused`);
  }
  await t.rejects(client.deletePolicyByLabels([]), { code: 'ERR_BAD_REQUEST' });
  t.equal(backend.policies.size, 2, 'nothing deleted by a malformed selection');
  t.same(await client.deletePolicyByLabels(['name=web-policy']), { revision: 3 });
  t.same([...backend.policies.keys()], ['db-policy']);
  await t.rejects(client.deletePolicyByLabels(['name=web-policy']), { code: 'ERR_NOT_FOUND' });
});

t.test('policy names are path-encoded', async (t) => {
  const { client } = await startApi(t);
  await t.rejects(client.getPolicy('a/b c'), { message: 'policy "a/b c" not found' });
});

t.test('POST /v1/policy/trace passes a valid request and returns the trace', async (t) => {
  const { client, backend } = await startApi(t);
  const trace = await client.tracePolicy({
    srcLabels: ['container:app=web'],
    dstLabels: ['app=db'],
    dport: 80,
    protocol: 'TCP',
  });
  t.equal(trace.verdict, 'allowed');
  t.equal(trace.decidingRule, 'db-policy');
  t.equal(trace.explanation.at(-1), 'Final verdict: ALLOWED');
  t.same(backend.traceRequests, [
    { srcLabels: ['container:app=web'], dstLabels: ['app=db'], dport: 80, protocol: 'TCP' },
  ]);
});

t.test('POST /v1/policy/trace defaults dport to 0 and protocol to ANY, and upper-cases the protocol', async (t) => {
  const { client, backend } = await startApi(t);
  await client.call('POST', '/v1/policy/trace', { srcLabels: ['a=b'], dstLabels: ['c=d'] });
  await client.call('POST', '/v1/policy/trace', { srcLabels: ['a=b'], dstLabels: ['c=d'], dport: 53, protocol: 'udp' });
  t.same(backend.traceRequests, [
    { srcLabels: ['a=b'], dstLabels: ['c=d'], dport: 0, protocol: 'ANY' },
    { srcLabels: ['a=b'], dstLabels: ['c=d'], dport: 53, protocol: 'UDP' },
  ]);
});

t.test('POST /v1/policy/trace refuses malformed requests with messages naming the field', async (t) => {
  const { client, backend } = await startApi(t);
  const valid = { srcLabels: ['a=b'], dstLabels: ['c=d'], dport: 80, protocol: 'TCP' };
  const cases: Array<[unknown, RegExp]> = [
    [[], /trace request must be a JSON object/],
    [{ ...valid, srcLabels: undefined }, /srcLabels must be a non-empty array of labels/],
    [{ ...valid, srcLabels: [] }, /srcLabels must be a non-empty array/],
    [{ ...valid, dstLabels: 'app=db' }, /dstLabels must be a non-empty array/],
    [{ ...valid, dstLabels: ['app=db', 7] }, /dstLabels\[1\] 7 is not a label/],
    [{ ...valid, srcLabels: ['a=b,c=d'] }, /srcLabels\[0\] "a=b,c=d" is not a label/],
    [{ ...valid, dport: 70000 }, /dport must be a port number 0-65535 \(0 = any port\); got 70000/],
    [{ ...valid, dport: '80' }, /dport must be a port number/],
    [{ ...valid, dport: 8.5 }, /dport must be a port number/],
    [{ ...valid, protocol: 'SCTP' }, /protocol must be TCP, UDP or ANY; got "SCTP"/],
    [
      { ...valid, src_labels: ['a=b'] },
      /unknown field "src_labels" in trace request; expected srcLabels, dstLabels, dport, protocol/,
    ],
  ];
  for (const [body, message] of cases) {
    await t.rejects(
      client.call('POST', '/v1/policy/trace', body),
      { code: 'ERR_BAD_REQUEST', kind: 'BadRequest', message },
      JSON.stringify(body),
    );
  }
  t.same(backend.traceRequests, [], 'no malformed request reached the backend');
});

t.test('GET /v1/policy/wait/:revision waits with the given timeout', async (t) => {
  const { client, backend } = await startApi(t);
  t.same(await client.waitPolicy(1, 5_000), { revision: 1, endpoints: 3 });
  t.same(await client.call('GET', '/v1/policy/wait/1'), { revision: 1, endpoints: 3 });
  t.same(
    backend.waitCalls,
    [
      { revision: 1, timeoutMs: 5_000 },
      { revision: 1, timeoutMs: 30_000 },
    ],
    'the timeout defaults to 30 s',
  );
});

t.test('GET /v1/policy/wait/:revision passes the daemon timeout error on', async (t) => {
  const { client } = await startApi(t);
  await t.rejects(client.waitPolicy(9, 100), {
    kind: 'Unavailable',
    code: 'ERR_POLICY_WAIT_TIMEOUT',
    message: 'timed out after 100ms waiting for policy revision 9; 2 endpoints are still at revision 1',
  });
});

t.test('GET /v1/policy/wait/:revision validates the revision and the timeout', async (t) => {
  const { client, backend } = await startApi(t);
  await t.rejects(client.call('GET', '/v1/policy/wait/latest'), {
    code: 'ERR_BAD_REQUEST',
    message: 'policy revision "latest" is not a number',
  });
  await t.rejects(client.call('GET', '/v1/policy/wait/2?timeout=30s'), {
    code: 'ERR_BAD_REQUEST',
    message: /timeout must be a number of milliseconds/,
  });
  await t.rejects(client.call('GET', '/v1/policy/wait/2?timeout=99999999'), { code: 'ERR_BAD_REQUEST' });
  await t.rejects(client.call('GET', '/v1/policy/wait/2?timeout=1&timeout=2'), {
    code: 'ERR_BAD_REQUEST',
    message: /given once/,
  });
  t.same(backend.waitCalls, []);
});
