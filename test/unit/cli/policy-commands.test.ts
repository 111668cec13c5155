/**
 * `cilium policy import|get|delete|trace|wait` end to end: the CLI as a child process against the
 * real ApiServer (fake backend) on a temporary socket.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseDuration, policySelection } from '../../../src/cli/policy-commands.js';
import { INVALID_POLICY_MESSAGE, startApi } from '../api/fixtures/api-harness.js';
import { runCli } from './fixtures/run-cli.js';

const webPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web-policy
spec:
  endpointSelector:
    matchLabels: {app: web}
`;
const dbPolicy = webPolicy.replace('web-policy', 'db-policy');
const invalidPolicy = `${webPolicy}  ingress:\n  - toPorts:\n    - ports: [{port: http}]\n`;

t.test('policy import FILE prints the revision; -o json prints {revision}', async (t) => {
  const { host, backend } = await startApi(t);
  const dir = mkdtempSync(join(tmpdir(), 'cilium-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'web.yaml');
  writeFileSync(file, webPolicy);
  const table = await runCli(['--host', host, 'policy', 'import', file]);
  t.equal(table.code, 0, table.stderr);
  t.equal(table.stdout, 'Revision: 2\n');
  const json = await runCli(['policy', 'import', file, '-o', 'json', '--host', host]);
  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), { revision: 3 });
  t.same(backend.importedTexts, [webPolicy, webPolicy], 'the file content reached the daemon unchanged');
});

t.test('policy import - reads the policy from stdin', async (t) => {
  const { host, backend } = await startApi(t);
  const r = await runCli(['--host', host, 'policy', 'import', '-'], { input: `${webPolicy}---\n${dbPolicy}` });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'Revision: 2\n');
  t.same(backend.importedTexts, [`${webPolicy}---\n${dbPolicy}`]);
  t.same([...backend.policies.keys()], ['web-policy', 'db-policy']);
});

t.test('policy import of an invalid policy prints the validation error and exits 1', async (t) => {
  const { host } = await startApi(t);
  const r = await runCli(['--host', host, 'policy', 'import', '-'], { input: invalidPolicy });
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  t.equal(r.stderr, `Error: ${INVALID_POLICY_MESSAGE} (ERR_POLICY_INVALID)\n`);
});

t.test('policy import of a missing file says so and exits 1', async (t) => {
  const { host, backend } = await startApi(t);
  const r = await runCli(['--host', host, 'policy', 'import', '/nonexistent/web.yaml']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'Error: cannot read policy file "/nonexistent/web.yaml": ENOENT\n');
  t.same(backend.importedTexts, []);
});

t.test('policy get prints the revision and the documents; -o json the PolicyListModel', async (t) => {
  const { host, client } = await startApi(t);
  await client.importPolicy(`${webPolicy}---\n${dbPolicy}`);
  const [all, one, json, missing] = await Promise.all([
    runCli(['--host', host, 'policy', 'get']),
    runCli(['--host', host, 'policy', 'get', 'db-policy']),
    runCli(['--host', host, 'policy', 'get', '-o', 'json']),
    runCli(['--host', host, 'policy', 'get', 'nope']),
  ]);
  t.equal(all.code, 0, all.stderr);
  const [first, ...rest] = all.stdout.split('\n');
  t.equal(first, 'Revision: 2');
  t.same(JSON.parse(rest.join('\n')), (await client.getPolicy()).policies);
  t.match(rest.join('\n'), /^\[\n {2}\{\n {4}"apiVersion"/, 'documents as JSON with 2-space indent');
  t.equal(one.code, 0, one.stderr);
  t.same(JSON.parse(one.stdout.split('\n').slice(1).join('\n')), [
    { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'db-policy' } },
  ]);
  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), await client.getPolicy());
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'Error: policy "nope" not found (ERR_NOT_FOUND)\n');
});

t.test('policy delete NAME and policy delete --all print the new revision', async (t) => {
  const { host, client, backend } = await startApi(t);
  await client.importPolicy(`${webPolicy}---\n${dbPolicy}`);
  const one = await runCli(['--host', host, 'policy', 'delete', 'web-policy']);
  t.equal(one.code, 0, one.stderr);
  t.equal(one.stdout, 'Revision: 3\n');
  t.same([...backend.policies.keys()], ['db-policy']);
  const all = await runCli(['--host', host, 'policy', 'delete', '--all', '-o', 'json']);
  t.equal(all.code, 0, all.stderr);
  t.same(JSON.parse(all.stdout), { revision: 4 });
  t.equal(backend.policies.size, 0);
  const missing = await runCli(['--host', host, 'policy', 'delete', 'web-policy']);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'Error: policy "web-policy" not found (ERR_NOT_FOUND)\n');
});

t.test('policy delete needs exactly one of NAME, labels and --all', async (t) => {
  const { host, backend } = await startApi(t);
  const [neither, both, empty] = await Promise.all([
    runCli(['--host', host, 'policy', 'delete']),
    runCli(['--host', host, 'policy', 'delete', 'web-policy', '--all']),
    runCli(['--host', host, 'policy', 'delete', '']),
  ]);
  const labelsAndAll = await runCli(['--host', host, 'policy', 'delete', 'name=web-policy', '--all']);
  for (const r of [neither, both, empty, labelsAndAll]) {
    t.equal(r.code, 1);
    t.match(r.stderr, /^error: give either a policy name, labels, or --all \(exactly one of them\)\n/);
    t.equal(r.stdout, '');
  }
  t.equal(backend.revision, 1, 'nothing was deleted');
});

t.test('policy trace prints the explanation and exits 0 for either verdict', async (t) => {
  const { host, backend } = await startApi(t);
  const [allowed, denied, json] = await Promise.all([
    runCli([
      '--host',
      host,
      'policy',
      'trace',
      '--src-labels',
      'container:app=web,team=a',
      '--src-labels',
      'tier=front',
      '--dst-labels',
      'app=db',
      '--dport',
      '80',
      '--protocol',
      'tcp',
    ]),
    runCli(['--host', host, 'policy', 'trace', '-s', 'app=web', '-d', 'app=db', '--dport', '443']),
    runCli(['--host', host, 'policy', 'trace', '-s', 'app=web', '-d', 'app=db', '-o', 'json']),
  ]);
  t.equal(allowed.code, 0, allowed.stderr);
  t.equal(
    allowed.stdout,
    'Tracing From: [container:app=web team=a tier=front] => To: [app=db] Ports: [80/TCP]\n' +
      '  Allowed by db-policy spec.ingress[0]\nFinal verdict: ALLOWED\n',
  );
  t.equal(denied.code, 0, denied.stderr);
  t.match(denied.stdout, /Final verdict: DENIED\n$/);
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(json.stdout), {
    verdict: 'denied',
    explanation: ['Tracing From: [app=web] => To: [app=db] Ports: [0/ANY]', String, 'Final verdict: DENIED'],
  });
  t.same(
    backend.traceRequests.find((r) => r.dport === 80),
    { srcLabels: ['container:app=web', 'team=a', 'tier=front'], dstLabels: ['app=db'], dport: 80, protocol: 'TCP' },
    'labels comma-separated and repeated are combined; the protocol is upper-cased',
  );
});

t.test('policy trace refuses bad arguments before calling the daemon', async (t) => {
  const { host, backend } = await startApi(t);
  const [noDst, badPort, badProto] = await Promise.all([
    runCli(['--host', host, 'policy', 'trace', '-s', 'app=web']),
    runCli(['--host', host, 'policy', 'trace', '-s', 'app=web', '-d', 'app=db', '--dport', '70000']),
    runCli(['--host', host, 'policy', 'trace', '-s', 'app=web', '-d', 'app=db', '--protocol', 'icmp']),
  ]);
  t.equal(noDst.code, 1);
  t.match(noDst.stderr, /required option '-d, --dst-labels <labels>' not specified/);
  t.equal(badPort.code, 1);
  t.match(badPort.stderr, /--dport must be a whole number from 0 to 65535/);
  t.equal(badProto.code, 1);
  t.match(badProto.stderr, /Allowed choices are TCP, UDP, ANY/);
  t.same(backend.traceRequests, []);
});

t.test('policy wait prints the applied revision; a timeout exits 1 with the daemon message', async (t) => {
  const { host, backend } = await startApi(t);
  const [ok, json, late, badTimeout] = await Promise.all([
    runCli(['--host', host, 'policy', 'wait', '1', '--timeout', '1m30s']),
    runCli(['--host', host, 'policy', 'wait', '1', '-o', 'json']),
    runCli(['--host', host, 'policy', 'wait', '7', '--timeout', '150ms']),
    runCli(['--host', host, 'policy', 'wait', '7', '--timeout', '30']),
  ]);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stdout, 'Revision 1 applied to 3 endpoints\n');
  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), { revision: 1, endpoints: 3 });
  t.equal(late.code, 1);
  t.equal(late.stdout, '');
  t.equal(
    late.stderr,
    'Error: timed out after 150ms waiting for policy revision 7; ' +
      '2 endpoints are still at revision 1 (ERR_POLICY_WAIT_TIMEOUT)\n',
  );
  t.equal(badTimeout.code, 1);
  t.match(badTimeout.stderr, /"30" is not a duration; use e\.g\. 500ms, 30s, 2m or 1m30s/);
  t.same(
    backend.waitCalls.map((c) => c.timeoutMs).sort((a, b) => a - b),
    [150, 30_000, 90_000],
    'the timeout reaches the daemon in milliseconds (default 30s)',
  );
});

t.test('parseDuration reads Go-style durations', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('30s'), 30_000);
  t.equal(parseDuration('1.5s'), 1_500);
  t.equal(parseDuration('2m'), 120_000);
  t.equal(parseDuration('1h2m3s'), 3_723_000);
  for (const bad of ['30', '', 's', '1d', '-1s', '1s '])
    t.throws(() => parseDuration(bad), { code: 'commander.invalidArgument' }, bad);
});

t.test('a daemon that is not running: exit 1 with a hint', async (t) => {
  const r = await runCli(['--host', 'unix:///nonexistent/cilium.sock', 'policy', 'get']);
  t.equal(r.code, 1);
  t.match(
    r.stderr,
    new RegExp(
      /^Error: cannot reach the cilium-docker daemon at \/nonexistent\/cilium.sock \(ENOENT\); is it /.source +
        /running\?.*\(ERR_DAEMON_UNREACHABLE\)\n$/.source,
    ),
  );
});

t.test('policy get|delete: one word is a name, anything with = or : is labels (as in Cilium)', async (t) => {
  t.same(policySelection([]), {});
  t.same(policySelection(['web-policy']), { name: 'web-policy' });
  t.same(policySelection(['name=l3-rule']), { labels: ['name=l3-rule'] });
  t.same(policySelection(['unspec:name']), { labels: ['unspec:name'] });
  t.same(policySelection(['a', 'b']), { labels: ['a', 'b'] });
});
