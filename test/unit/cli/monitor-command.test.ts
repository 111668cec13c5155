/**
 * `cilium monitor` end to end: the CLI as a child process streaming from the real ApiServer (fake
 * backend), in text and NDJSON form, stopped by Ctrl-C or by the daemon.
 */
import t from 'tap';
import type { MonitorEventModel } from '../../../src/api/models.js';
import { dropEvent, startApi, traceEvent, until, verdictEvent } from '../api/fixtures/api-harness.js';
import { spawnCli, runCli } from './fixtures/run-cli.js';

const expectedLines = [
  'xx drop (Policy denied) flow 0x0 to endpoint 12, identity 4321->5678: ' +
    '198.18.100.2:43210 -> 198.18.100.3:80 tcp [container:app=web] -> [container:app=db]',
  'Policy verdict log: flow 0x0 local EP ID 12, remote ID 5678, proto 6, egress, action allow, match L3-L4, ' +
    'policy web-egress: 198.18.100.2:43210 -> 198.18.100.3:80 tcp [container:app=web] -> [container:app=db]',
  '-> endpoint 12 flow 0x0, identity 4321->5678: ' +
    '198.18.100.2:43210 -> 198.18.100.3:80 tcp [container:app=web] -> [container:app=db]',
];

t.test('monitor prints one line per event until Ctrl-C, then unsubscribes and exits 0', async (t) => {
  const { host, backend } = await startApi(t);
  const cli = spawnCli(['--host', host, 'monitor']);
  t.teardown(() => cli.child.kill('SIGKILL'));
  const subscription = await backend.subscription(0);
  t.equal(subscription.types, undefined, 'every type by default');
  backend.emit(dropEvent);
  t.same(await cli.lines(1), expectedLines.slice(0, 1), 'the first event is printed before any other arrives');
  backend.emit(verdictEvent);
  backend.emit(traceEvent);
  t.same(await cli.lines(3), expectedLines);
  cli.child.kill('SIGINT');
  const result = await cli.exited;
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stderr, '');
  await until(() => subscription.unsubscribed, 'the daemon-side unsubscribe');
  t.ok(subscription.unsubscribed, 'backend unsubscribe called when the CLI disconnected');
});

t.test('monitor -o json prints NDJSON; --type is repeatable and comma-separated', async (t) => {
  const { host, backend } = await startApi(t);
  const cli = spawnCli(['--host', host, 'monitor', '--type', 'drop', '-t', 'trace,policy-verdict', '-o', 'json']);
  t.teardown(() => cli.child.kill('SIGKILL'));
  const subscription = await backend.subscription(0);
  t.same(subscription.types, ['drop', 'policy-verdict', 'trace']);
  const events: MonitorEventModel[] = [dropEvent, verdictEvent, traceEvent];
  for (const event of events) backend.emit(event);
  const lines = await cli.lines(3);
  t.same(
    lines.map((line) => JSON.parse(line)),
    JSON.parse(JSON.stringify(events)),
    'one MonitorEventModel per line',
  );
  cli.child.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);
  await until(() => subscription.unsubscribed, 'the daemon-side unsubscribe');
});

t.test('monitor exits 0 when the daemon ends the stream', async (t) => {
  const { host, backend, server } = await startApi(t);
  const cli = spawnCli(['--host', host, 'monitor', '--type', 'drop']);
  t.teardown(() => cli.child.kill('SIGKILL'));
  const subscription = await backend.subscription(0);
  t.same(subscription.types, ['drop']);
  backend.emit(dropEvent);
  await cli.lines(1);
  await server.stop();
  const result = await cli.exited;
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, `${expectedLines[0]}\n`);
  t.ok(subscription.unsubscribed);
});

t.test('monitor with an unknown type prints the daemon error and exits 1', async (t) => {
  const { host, backend } = await startApi(t);
  const r = await runCli(['--host', host, 'monitor', '--type', 'drop,l7']);
  t.equal(r.code, 1);
  t.equal(
    r.stderr,
    'Error: unknown monitor event type "l7"; expected one of drop, policy-verdict, trace (ERR_BAD_REQUEST)\n',
  );
  t.equal(backend.subscriptions.length, 0);
});

t.test('monitor against no daemon exits 1 with a hint', async (t) => {
  const r = await runCli(['--host', 'unix:///nonexistent/cilium.sock', 'monitor']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^Error: cannot reach the cilium-docker daemon at \/nonexistent\/cilium.sock \(ENOENT\)/);
});
