/**
 * `GET /v1/monitor`: NDJSON delivered event by event, type filters, the idle heartbeat,
 * unsubscribing when the client goes away (however it goes), and a clean end when the server
 * stops.
 */
import { request } from 'node:http';
import t from 'tap';
import { ApiClient } from '../../../src/api/client.js';
import type { MonitorEventModel } from '../../../src/api/models.js';
import { parseMonitorTypes } from '../../../src/api/request-parsing.js';
import { UnsupportedError } from '../../../src/util/errors.js';
import { dropEvent, rawRequest, startApi, traceEvent, until, verdictEvent } from './fixtures/api-harness.js';

t.test('events arrive one by one, each as soon as it is emitted', async (t) => {
  const { client, backend } = await startApi(t);
  const received: MonitorEventModel[] = [];
  const stream = client.monitor(undefined, (e) => received.push(e));
  t.teardown(() => stream.close());
  const subscription = await backend.subscription(0);
  t.equal(subscription.types, undefined, 'no ?type= subscribes to every type');
  for (const [i, event] of [dropEvent, verdictEvent, traceEvent].entries()) {
    backend.emit(event);
    // Each event must arrive on its own (not held back until more data or the end).
    await until(() => received.length === i + 1, `event ${i + 1}`);
  }
  t.same(received, JSON.parse(JSON.stringify([dropEvent, verdictEvent, traceEvent])));
});

t.test('?type= filters are passed to the backend, comma-separated or repeated', async (t) => {
  const { client, backend, socketPath } = await startApi(t);
  const stream = client.monitor(['drop', 'policy-verdict'], () => {});
  await backend.subscription(0);
  t.same(backend.subscriptions[0].types, ['drop', 'policy-verdict']);
  stream.close();
  await stream.done;

  const req = request({ socketPath, path: '/v1/monitor?type=trace&type=drop', agent: false });
  req.on('error', () => {}); // the reset from destroy() below
  req.end();
  await backend.subscription(1);
  t.same(backend.subscriptions[1].types, ['drop', 'trace']);
  req.destroy();
});

t.test('parseMonitorTypes reads one, several and no types', async (t) => {
  t.equal(parseMonitorTypes(undefined), undefined);
  t.equal(parseMonitorTypes(''), undefined);
  t.same(parseMonitorTypes('drop, trace,'), new Set(['drop', 'trace']));
  t.same(parseMonitorTypes(['drop', 'policy-verdict,trace']), new Set(['drop', 'policy-verdict', 'trace']));
  t.throws(() => parseMonitorTypes('drops'), {
    code: 'ERR_BAD_REQUEST',
    message: 'unknown monitor event type "drops"; expected one of drop, policy-verdict, trace',
  });
  t.throws(() => parseMonitorTypes('constructor'), { code: 'ERR_BAD_REQUEST' });
});

t.test('the stream is NDJSON with an idle heartbeat newline', async (t) => {
  const { socketPath, backend } = await startApi(t, { monitorHeartbeatMs: 50 });
  const req = request({ socketPath, path: '/v1/monitor', agent: false });
  req.on('error', () => {}); // the reset from destroy() at teardown
  t.teardown(() => req.destroy());
  const response = await new Promise<import('node:http').IncomingMessage>((resolve) =>
    req.on('response', resolve).end(),
  );
  t.equal(response.statusCode, 200);
  t.equal(response.headers['content-type'], 'application/x-ndjson');
  let body = '';
  response.setEncoding('utf8').on('data', (c: string) => (body += c));
  await backend.subscription(0);
  await until(() => body.length >= 2, 'two heartbeats');
  t.match(body, /^\n+$/, 'only heartbeats while idle');
  backend.emit(dropEvent);
  await until(() => body.includes('}\n'), 'the event line');
  const lines = body.split('\n').filter((l) => l !== '');
  t.same(
    lines.map((l) => JSON.parse(l)),
    [JSON.parse(JSON.stringify(dropEvent))],
  );
});

t.test('closing the client stream unsubscribes and resolves done', async (t) => {
  const { client, backend } = await startApi(t);
  const stream = client.monitor(undefined, () => {});
  const subscription = await backend.subscription(0);
  t.notOk(subscription.unsubscribed);
  stream.close();
  await stream.done;
  await until(() => subscription.unsubscribed, 'the unsubscribe');
  t.ok(subscription.unsubscribed, 'backend unsubscribe called');
  backend.emit(dropEvent); // must not throw or write to a closed response
});

t.test('a client that disconnects abruptly is unsubscribed too', async (t) => {
  const { socketPath, backend } = await startApi(t);
  const req = request({ socketPath, path: '/v1/monitor', agent: false });
  req.on('error', () => {}); // the reset from destroy() below
  req.end();
  const subscription = await backend.subscription(0);
  req.socket?.destroy();
  req.destroy();
  await until(() => subscription.unsubscribed, 'the unsubscribe');
  t.ok(subscription.unsubscribed);
});

t.test('onEvent may close the stream from inside the callback', async (t) => {
  const { client, backend } = await startApi(t);
  const received: MonitorEventModel[] = [];
  const stream = client.monitor(undefined, (e) => {
    received.push(e);
    stream.close();
  });
  await backend.subscription(0);
  backend.emit(dropEvent);
  backend.emit(traceEvent);
  await stream.done;
  t.equal(received.length, 1, 'nothing delivered after close');
  await until(() => backend.subscriptions[0].unsubscribed, 'the unsubscribe');
});

t.test('an exception in onEvent rejects done and disconnects', async (t) => {
  const { client, backend } = await startApi(t);
  const stream = client.monitor(undefined, () => {
    throw new Error('consumer broke');
  });
  await backend.subscription(0);
  backend.emit(dropEvent);
  await t.rejects(stream.done, { message: 'consumer broke' });
  await until(() => backend.subscriptions[0].unsubscribed, 'the unsubscribe');
});

t.test('stopping the server ends open streams cleanly and unsubscribes them', async (t) => {
  const { client, backend, server } = await startApi(t);
  const received: MonitorEventModel[] = [];
  const stream = client.monitor(['drop'], (e) => received.push(e));
  const subscription = await backend.subscription(0);
  backend.emit(dropEvent);
  await until(() => received.length === 1, 'the event');
  await server.stop();
  await stream.done; // resolves: the daemon ended the stream
  t.ok(subscription.unsubscribed);
});

t.test('an unknown type is a 400 before any streaming, and done rejects with it', async (t) => {
  const { client, backend, socketPath } = await startApi(t);
  const stream = client.monitor(['drop', 'l7'], () => {});
  await t.rejects(stream.done, {
    kind: 'BadRequest',
    code: 'ERR_BAD_REQUEST',
    message: /unknown monitor event type "l7"/,
  });
  const reply = await rawRequest(socketPath, 'GET', '/v1/monitor?type=l7');
  t.equal(reply.status, 400);
  t.match(reply.contentType, /application\/json/);
  t.equal(backend.subscriptions.length, 0);
});

t.test('a backend that cannot subscribe answers with its error', async (t) => {
  const { client, backend } = await startApi(t);
  backend.subscribeError = new UnsupportedError(
    'the monitor needs the BPF datapath; this daemon runs the routing datapath',
  );
  const stream = client.monitor(undefined, () => {});
  await t.rejects(stream.done, { kind: 'Unsupported', code: 'ERR_UNSUPPORTED', message: /needs the BPF datapath/ });
});

t.test('a daemon that is not running rejects done with DaemonUnreachableError', async (t) => {
  const stream = new ApiClient('unix:///nonexistent/cilium.sock').monitor(undefined, () => {});
  await t.rejects(stream.done, {
    code: 'ERR_DAEMON_UNREACHABLE',
    message: /cannot reach the cilium-docker daemon at \/nonexistent\/cilium.sock \(ENOENT\)/,
  });
});
