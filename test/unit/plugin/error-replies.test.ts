/**
 * Every error on the plugin socket is JSON in Docker's shape — `{"Err"}` with a non-200 status
 * for NetworkDriver calls, 200 + `{"Error"}` for IpamDriver calls — including the errors raised
 * before a handler runs: an unknown Content-Encoding or charset, invalid JSON, an oversized or
 * corrupt body, a path that is no call, and bytes that are not HTTP. Never Express's HTML page
 * with a stack trace and file paths.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PluginServer } from '../../../src/plugin/server.js';
import { PLUGIN_MEDIA_TYPE } from '../../../src/plugin/wire.js';
import { log } from '../../../src/util/log.js';
import { leaks, parseRawResponse, rawBytes, rawHttp, type RawReply } from '../../support/raw-http.js';

const validBody = JSON.stringify({ NetworkID: 'a'.repeat(64), EndpointID: 'b'.repeat(64), PoolID: 'p', Address: '' });

/** Requests refused before any handler runs, with what the message must say. */
const hostileRequests: Array<{
  what: string;
  headers?: Record<string, string>;
  body: string | Buffer;
  message: RegExp;
}> = [
  {
    what: 'Content-Encoding: bogus',
    headers: { 'Content-Encoding': 'bogus' },
    body: validBody,
    message: /unsupported Content-Encoding "bogus"/,
  },
  {
    what: 'charset=latin2',
    headers: { 'Content-Type': 'application/json; charset=latin2' },
    body: validBody,
    message: /unsupported charset "latin2"/,
  },
  { what: 'invalid JSON', body: '{"NetworkID": ', message: /request body is not valid JSON/ },
  {
    what: 'a 3 MB body',
    body: JSON.stringify({ NetworkID: 'x'.repeat(3 * 1024 * 1024) }),
    message: /request body is larger than the limit of 2097152 bytes/,
  },
  {
    what: 'Content-Encoding: gzip with a body that is not gzip',
    headers: { 'Content-Encoding': 'gzip' },
    body: validBody,
    message: /bad request: incorrect header check/,
  },
];

function assertClean(t: Test, reply: RawReply, what: string): void {
  t.same(
    leaks(reply.text),
    [],
    `${what}: no HTML, stack frame or file path in ${JSON.stringify(reply.text.slice(0, 200))}`,
  );
}

/** The reply's JSON body ({} and a failure when it is not JSON). */
function jsonBody(t: Test, reply: RawReply, what: string): Record<string, unknown> {
  try {
    return JSON.parse(reply.text) as Record<string, unknown>;
  } catch {
    t.fail(`${what}: body is not JSON: ${JSON.stringify(reply.text.slice(0, 200))}`);
    return {};
  }
}

t.test('errors before a handler runs are JSON in the shape of the call', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cd-plugin-errors-'));
  const socketPath = join(dir, 'cilium.sock');
  const handled: string[] = [];
  const record = (call: string) => async () => {
    handled.push(call);
    return {};
  };
  const server = new PluginServer({
    socketPath,
    network: {
      CreateEndpoint: record('CreateEndpoint'),
      // A handler failing in a way nobody planned: an internal error, still JSON.
      Join: async () => {
        throw new TypeError("Cannot read properties of undefined (reading 'Interface')");
      },
    },
    ipam: { RequestAddress: record('RequestAddress') },
    log: log.child({ component: 'plugin-test' }, { level: 'silent' }),
  });
  await server.start();
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const request of hostileRequests) {
    const network = await rawHttp(socketPath, {
      method: 'POST',
      path: '/NetworkDriver.CreateEndpoint',
      headers: request.headers,
      body: request.body,
    });
    t.equal(network.status, 400, `NetworkDriver ${request.what}: 400`);
    t.equal(network.contentType.split(';')[0], PLUGIN_MEDIA_TYPE, `NetworkDriver ${request.what}: JSON media type`);
    const networkBody = jsonBody(t, network, `NetworkDriver ${request.what}`);
    t.same(Object.keys(networkBody), ['Err'], `NetworkDriver ${request.what}: {"Err"} only`);
    t.match(networkBody.Err, /^NetworkDriver\.CreateEndpoint: /, `NetworkDriver ${request.what}: names the call`);
    t.match(networkBody.Err, request.message, `NetworkDriver ${request.what}: says what is wrong`);
    assertClean(t, network, `NetworkDriver ${request.what}`);

    const ipam = await rawHttp(socketPath, {
      method: 'POST',
      path: '/IpamDriver.RequestAddress',
      headers: request.headers,
      body: request.body,
    });
    t.equal(ipam.status, 200, `IpamDriver ${request.what}: 200 (dockerd reads Error only on 200)`);
    t.equal(ipam.contentType.split(';')[0], PLUGIN_MEDIA_TYPE, `IpamDriver ${request.what}: JSON media type`);
    const ipamBody = jsonBody(t, ipam, `IpamDriver ${request.what}`);
    t.same(Object.keys(ipamBody), ['Error'], `IpamDriver ${request.what}: {"Error"} only`);
    t.match(ipamBody.Error, request.message, `IpamDriver ${request.what}: says what is wrong`);
    assertClean(t, ipam, `IpamDriver ${request.what}`);
  }
  t.same(handled, [], 'no handler saw a refused request');

  const unknownPaths = [
    { method: 'POST', path: '/%ZZ' },
    { method: 'GET', path: '/NetworkDriver.CreateEndpoint' },
    { method: 'POST', path: '/NetworkDriver.NoSuchCall' },
  ];
  for (const { method, path } of unknownPaths) {
    const reply = await rawHttp(socketPath, { method, path, body: validBody });
    t.equal(reply.status, 404, `${method} ${path}: 404`);
    t.equal(reply.contentType.split(';')[0], PLUGIN_MEDIA_TYPE, `${method} ${path}: JSON media type`);
    t.match(jsonBody(t, reply, `${method} ${path}`), { Err: String }, `${method} ${path}: {"Err"}`);
    assertClean(t, reply, `${method} ${path}`);
  }

  const internal = await rawHttp(socketPath, { method: 'POST', path: '/NetworkDriver.Join', body: validBody });
  t.equal(internal.status, 500, 'an unplanned handler error: 500');
  t.same(
    jsonBody(t, internal, 'unplanned handler error'),
    { Err: "Cannot read properties of undefined (reading 'Interface')" },
    'its message, without the stack',
  );

  const notHttp = parseRawResponse(await rawBytes(socketPath, 'NOT HTTP AT ALL\r\n\r\n'));
  t.equal(notHttp.status, 400, 'bytes that are not HTTP: 400');
  t.equal(notHttp.contentType.split(';')[0], PLUGIN_MEDIA_TYPE, 'bytes that are not HTTP: JSON media type');
  t.match(
    jsonBody(t, notHttp, 'bytes that are not HTTP'),
    { Err: /^malformed HTTP request \(HPE_/ },
    'bytes that are not HTTP: {"Err"}',
  );

  // The server still answers normally.
  const ok = await rawHttp(socketPath, { method: 'POST', path: '/IpamDriver.RequestAddress', body: validBody });
  t.equal(ok.status, 200);
  t.same(JSON.parse(ok.text), {});
  t.same(handled, ['RequestAddress']);
});
