/**
 * Agent API BPF routes through the typed client, and the routes' error mapping.
 */
import t from 'tap';
import { bpfEndpoints, bpfPolicyOf12, conntrack, ipcache, rawRequest, startApi } from './fixtures/api-harness.js';

t.test('GET /v1/bpf/policy/:endpoint returns the endpoint policy map', async (t) => {
  const { client } = await startApi(t);
  t.same(await client.bpfPolicy('12'), bpfPolicyOf12);
  await t.rejects(client.bpfPolicy('13'), {
    kind: 'NotFound',
    code: 'ERR_NOT_FOUND',
    message: 'endpoint "13" not found',
  });
});

t.test('GET /v1/bpf/ipcache, /v1/bpf/ct and /v1/bpf/endpoint return the maps', async (t) => {
  const { client } = await startApi(t);
  t.same(await client.bpfIpcache(), ipcache);
  t.same(await client.bpfConntrack(), conntrack);
  t.same(await client.bpfEndpoints(), bpfEndpoints);
});

t.test('a backend failure becomes a 500 with the error body', async (t) => {
  const { backend, socketPath } = await startApi(t);
  backend.bpfConntrack = async () => {
    throw new Error('map lookup failed: EPERM');
  };
  const reply = await rawRequest(socketPath, 'GET', '/v1/bpf/ct');
  t.equal(reply.status, 500);
  t.match(reply.contentType, /application\/json/);
  t.same(JSON.parse(reply.text), { error: { code: 'ERR_INTERNAL', message: 'map lookup failed: EPERM' } });
});

t.test('unknown routes are a JSON 404', async (t) => {
  const { socketPath } = await startApi(t);
  const reply = await rawRequest(socketPath, 'GET', '/v1/bpf/nat');
  t.equal(reply.status, 404);
  t.same(JSON.parse(reply.text), { error: { code: 'ERR_NOT_FOUND', message: 'no API route GET /v1/bpf/nat' } });
});
