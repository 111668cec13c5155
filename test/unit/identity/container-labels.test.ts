/**
 * Docker labels -> identity labels: every valid label becomes one `container:` label with the
 * whole Docker key; keys outside Cilium's label-key rules, oversized keys and values are left out
 * and reported; nothing a label says can choose another source (issue 15, item 1).
 */
import t from 'tap';
import {
  MAX_CONTAINER_LABEL_KEY_BYTES,
  MAX_CONTAINER_LABEL_VALUE_BYTES,
  MAX_CONTAINER_LABELS_BYTES,
  containerLabels,
  invalidContainerLabelKey,
} from '../../../src/identity/container-labels.js';
import { endpointLabels } from '../../../src/endpoint/endpoint-labels.js';

t.test('valid labels become container labels with the whole key, any value text', async (t) => {
  const { labels, ignored } = containerLabels({
    app: 'z;reserved:host',
    'com.docker.compose.project.working_dir': '/srv/app',
    'org.opencontainers.image.source': 'https://example.com/a?b=c',
    'example.com/team': 'x;container:role=admin',
    empty: '',
  });
  t.same(ignored, []);
  t.ok(
    labels.every((l) => l.source === 'container'),
    'all container-sourced',
  );
  t.same(
    labels.map((l) => [l.key, l.value]),
    [
      ['app', 'z;reserved:host'],
      ['com.docker.compose.project.working_dir', '/srv/app'],
      ['empty', ''],
      ['example.com/team', 'x;container:role=admin'],
      ['org.opencontainers.image.source', 'https://example.com/a?b=c'],
    ],
  );
});

t.test('keys that are not Cilium label keys are ignored, with a reason', async (t) => {
  for (const key of [
    'reserved:host',
    'container:role',
    'a=b',
    'a;b',
    'has space',
    '',
    '-lead',
    'trail.',
    'a\\b',
    'é',
    'a\nb',
    'x'.repeat(MAX_CONTAINER_LABEL_KEY_BYTES + 1),
  ]) {
    t.ok(invalidContainerLabelKey(key), `${JSON.stringify(key.slice(0, 20))} refused`);
  }
  for (const key of [
    'a',
    'A1',
    'app.kubernetes.io/name',
    'com.docker.compose.config-hash',
    'x_y',
    'x'.repeat(MAX_CONTAINER_LABEL_KEY_BYTES),
  ]) {
    t.equal(invalidContainerLabelKey(key), undefined, `${key.slice(0, 30)} accepted`);
  }
  const { labels, ignored } = containerLabels({ 'reserved:host': '', app: 'ok', 'a=b': 'c' });
  t.same(
    labels.map((l) => l.key),
    ['app'],
  );
  t.same(ignored.map((i) => i.key).sort(), ['a=b', 'reserved:host']);
  t.ok(ignored.every((i) => i.reason.length > 0));
});

t.test('a 1 MB key, an oversized value, NUL and lone surrogates stay out; the total is bounded', async (t) => {
  const huge = `k${'x'.repeat(1 << 20)}`;
  const { labels, ignored } = containerLabels({
    [huge]: 'v',
    big: 'v'.repeat(MAX_CONTAINER_LABEL_VALUE_BYTES + 1),
    fits: 'v'.repeat(MAX_CONTAINER_LABEL_VALUE_BYTES),
    nul: 'a\u0000b',
    surrogate: 'a\ud800b',
    pair: 'a\ud83d\udca5b',
  });
  t.same(
    labels.map((l) => l.key),
    ['fits', 'pair'],
  );
  t.equal(ignored.length, 4);
  t.ok(
    ignored.every((i) => i.key.length <= 64),
    'reported keys are cut for the log',
  );
  const many: Record<string, string> = {};
  for (let i = 0; i < 40; i++) many[`k${String(i).padStart(2, '0')}`] = 'v'.repeat(MAX_CONTAINER_LABEL_VALUE_BYTES);
  const bounded = containerLabels(many);
  const total = bounded.labels.reduce((n, l) => n + l.key.length + l.value.length, 0);
  t.ok(total <= MAX_CONTAINER_LABELS_BYTES, `kept ${bounded.labels.length} labels, ${total} bytes`);
  t.equal(bounded.labels.length + bounded.ignored.length, 40, 'the rest reported');
});

t.test('endpoint labels: container labels plus docker:network, nothing else', async (t) => {
  const { labels, ignored } = endpointLabels({
    containerId: 'c',
    containerName: 'n',
    networkName: 'net',
    labels: { app: 'z;reserved:host', 'reserved:host': '', 'docker:network': 'other' },
  });
  t.same(labels.toStrings(), ['container:app=z;reserved:host', 'docker:network=net']);
  t.notOk(labels.has('reserved', 'host'));
  t.equal(ignored.length, 2);
});
