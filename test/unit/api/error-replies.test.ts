/**
 * Every error on the agent API socket is `{"error": {code, message}}` JSON with the status of its
 * kind — including the errors raised outside a route's own handling: an undecodable path
 * parameter (`%ZZ`), an unknown route, an unknown Content-Encoding or charset, invalid or
 * oversized bodies, bytes that are not HTTP — and a YAML alias bomb is a policy validation
 * error, not an internal one. Never Express's HTML page with a stack trace and file paths.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { PolicyRevisionModel } from '../../../src/api/models.js';
import { ApiServer } from '../../../src/api/server.js';
import { parsePolicyText } from '../../../src/policy/parse.js';
import { log } from '../../../src/util/log.js';
import { leaks, parseRawResponse, rawBytes, rawHttp, type RawReply } from '../../support/raw-http.js';
import { FakeAgentBackend } from './fixtures/api-harness.js';

/** Imports through the real policy parser (the fake's own importPolicy only looks for names). */
class ParsingBackend extends FakeAgentBackend {
  override async importPolicy(text: string): Promise<PolicyRevisionModel> {
    this.importedTexts.push(text);
    parsePolicyText(text);
    return { revision: ++this.revision };
  }
}

/** Billion laughs: nine levels of nine aliases each, 9^9 (387 million) strings once expanded. */
const aliasBomb = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: laughs
  labels:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
spec:
  endpointSelector:
    matchLabels: {app: web}
`;

/** The API's error shape, the expected status and code, and nothing a developer page would show. */
function assertError(t: Test, reply: RawReply, what: string, status: number, code: string, message: RegExp): void {
  t.equal(reply.status, status, `${what}: status ${status}`);
  t.equal(reply.contentType.split(';')[0], 'application/json', `${what}: application/json`);
  let body: unknown;
  try {
    body = JSON.parse(reply.text);
  } catch {
    t.fail(`${what}: body is not JSON: ${JSON.stringify(reply.text.slice(0, 200))}`);
    return;
  }
  t.same(Object.keys(body as object), ['error'], `${what}: {"error"} only`);
  t.match(body, { error: { code, message } }, `${what}: ${code}, says what is wrong`);
  t.same(leaks(reply.text), [], `${what}: no HTML, stack frame or file path`);
}

t.test('every error on the agent API socket is JSON in its shape', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cilium-api-errors-'));
  const socketPath = join(dir, 'cilium.sock');
  const backend = new ParsingBackend();
  const server = new ApiServer({ socketPath, backend, log: log.child({ component: 'api-test' }, { level: 'silent' }) });
  await server.start();
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  assertError(
    t,
    await rawHttp(socketPath, { method: 'GET', path: '/v1/endpoint/%ZZ' }),
    'GET /v1/endpoint/%ZZ',
    400,
    'ERR_BAD_REQUEST',
    /not valid percent-encoding/,
  );
  assertError(
    t,
    await rawHttp(socketPath, { method: 'GET', path: '/v1/policy/%E0%A4%A' }),
    'GET /v1/policy/%E0%A4%A',
    400,
    'ERR_BAD_REQUEST',
    /not valid percent-encoding/,
  );
  assertError(
    t,
    await rawHttp(socketPath, { method: 'GET', path: '/v1/nosuch' }),
    'unknown route',
    404,
    'ERR_NOT_FOUND',
    /no API route GET \/v1\/nosuch/,
  );

  const policyBody = JSON.stringify({ text: 'apiVersion: cilium.io/v2\n' });
  const hostile: Array<[string, Record<string, string>, string, RegExp]> = [
    ['Content-Encoding: bogus', { 'Content-Encoding': 'bogus' }, policyBody, /unsupported Content-Encoding "bogus"/],
    [
      'charset=latin2',
      { 'Content-Type': 'application/json; charset=latin2' },
      policyBody,
      /unsupported charset "latin2"/,
    ],
    ['invalid JSON', {}, '{"text": ', /request body is not valid JSON/],
    [
      'a 9 MB body',
      {},
      JSON.stringify({ text: 'x'.repeat(9 * 1024 * 1024) }),
      /request body is larger than the limit of 8388608 bytes/,
    ],
  ];
  for (const [what, headers, body, message] of hostile) {
    assertError(
      t,
      await rawHttp(socketPath, { method: 'POST', path: '/v1/policy', headers, body }),
      `POST /v1/policy with ${what}`,
      400,
      'ERR_BAD_REQUEST',
      message,
    );
  }
  t.same(backend.importedTexts, [], 'no refused body reached the backend');

  const started = performance.now();
  const bomb = await rawHttp(socketPath, {
    method: 'POST',
    path: '/v1/policy',
    body: JSON.stringify({ text: aliasBomb }),
  });
  const ms = performance.now() - started;
  assertError(
    t,
    bomb,
    'alias bomb',
    400,
    'ERR_POLICY_INVALID',
    /YAML document 1: cannot expand its anchors and aliases \(at most 100 alias expansions\)/,
  );
  t.ok(ms < 2000, `alias bomb refused in ${Math.round(ms)} ms`);
  t.equal(backend.revision, 1, 'nothing imported');

  const notHttp = parseRawResponse(await rawBytes(socketPath, 'NOT HTTP AT ALL\r\n\r\n'));
  assertError(t, notHttp, 'bytes that are not HTTP', 400, 'ERR_BAD_REQUEST', /^malformed HTTP request \(HPE_/);

  // Still serving.
  const healthy = await rawHttp(socketPath, { method: 'GET', path: '/v1/healthz' });
  t.equal(healthy.status, 200);
  t.same(JSON.parse(healthy.text), { ok: true });
});
