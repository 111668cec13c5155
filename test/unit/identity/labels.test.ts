/**
 * The canonical label-set form is injective: label text holding the separators (`;`, `=`, `:`),
 * the escape character or a source prefix (`reserved:`, `container:`) stays inside its own label,
 * decodes back exactly, and never makes two different sets share a form (issue 15, item 1).
 */
import t from 'tap';
import { LabelSet, legacyCanonical, type Label } from '../../../src/identity/labels.js';

const c = (key: string, value: string): Label => ({ source: 'container', key, value });

t.test('a value holding `;reserved:host` stays one container label', async (t) => {
  const set = new LabelSet([c('app', 'z;reserved:host'), { source: 'docker', key: 'network', value: 'n' }]);
  const back = LabelSet.fromCanonical(set.toCanonical());
  t.same(back.labels, set.labels, 'decodes to the same labels');
  t.notOk(back.has('reserved', 'host'), 'no reserved:host label');
  t.equal(
    set.toCanonical(),
    'container:app=z\\;reserved:host;docker:network=n;',
    'the `;` is escaped; `:` inside a value needs no escape',
  );
});

t.test('`app=x;container:role=admin` is not {app=x, role=admin}', async (t) => {
  const smuggled = new LabelSet([c('app', 'x;container:role=admin')]);
  const two = new LabelSet([c('app', 'x'), c('role', 'admin')]);
  t.not(smuggled.toCanonical(), two.toCanonical(), 'different canonical forms');
  t.notOk(smuggled.equals(two));
  t.notOk(LabelSet.fromCanonical(smuggled.toCanonical()).has('container', 'role'), 'no role label after decoding');
  t.equal(
    legacyCanonical(smuggled),
    legacyCanonical(two),
    'the unescaped form had them collide (what the migration detects)',
  );
});

t.test('separators in sources and keys are escaped too', async (t) => {
  const cases: Label[][] = [
    [{ source: 'a:b', key: 'c', value: '' }],
    [{ source: 'a', key: 'b:c', value: '' }],
    [{ source: 'a', key: 'b=c', value: 'd' }],
    [{ source: 'a', key: 'b', value: 'c=d' }],
    [{ source: 'a', key: 'b;c', value: '' }],
    [
      { source: 'a', key: 'b', value: '' },
      { source: 'c', key: 'd', value: '' },
    ],
    [{ source: 'a', key: 'b', value: ';c:d=' }],
    [{ source: 'a\\', key: 'b', value: '' }],
    [{ source: 'a', key: '\\b', value: '\\' }],
    [{ source: '', key: '', value: '' }],
  ];
  const forms = new Map<string, string>();
  for (const labels of cases) {
    const set = new LabelSet(labels);
    const form = set.toCanonical();
    t.same(LabelSet.fromCanonical(form).labels, set.labels, `${JSON.stringify(labels)} round-trips through ${form}`);
    t.ok(LabelSet.isCanonical(form));
    t.notOk(forms.has(form), `${form} is not also the form of ${forms.get(form)}`);
    forms.set(form, JSON.stringify(labels));
  }
  t.equal(
    new LabelSet([
      { source: 'a:b', key: 'c', value: '' },
      { source: 'a', key: 'b:c', value: '' },
    ]).labels.length,
    2,
    '`a:b`+`c` and `a`+`b:c` are two labels, not one',
  );
});

t.test('labels without special characters keep their unescaped form (identities keep their store keys)', async (t) => {
  const set = new LabelSet([
    c('app', 'web'),
    c('org.opencontainers.image.source', 'https://example.com/x?a=b'),
    { source: 'docker', key: 'network', value: 'n1' },
  ]);
  t.equal(set.toCanonical(), legacyCanonical(set));
  t.equal(
    set.toCanonical(),
    'container:app=web;container:org.opencontainers.image.source=https://example.com/x?a=b;docker:network=n1;',
  );
});

t.test('non-canonical text decodes without throwing and is reported as such', async (t) => {
  for (const text of ['container:app=x\\', 'app=x;', 'container:a:b=c;', 'a\\qb:c=d;', ';;', 'x']) {
    t.doesNotThrow(() => LabelSet.fromCanonical(text), text);
  }
  t.notOk(LabelSet.isCanonical('container:a=b\\'), 'a dangling escape');
  t.notOk(LabelSet.isCanonical('docker:n=1;container:a=b;'), 'unsorted');
  t.notOk(LabelSet.isCanonical('container:a:b=c;'), 'an unescaped `:` in a key');
  t.ok(LabelSet.isCanonical(''), 'the empty set');
});

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('property: hostile strings round-trip and distinct sets never share a form', async (t) => {
  const random = prng(15);
  const alphabet = ['a', 'b', ';', '=', ':', '\\', 'reserved:', 'container:', 'host', '\n', 'é', '💥', ''];
  const text = () => {
    let s = '';
    const n = Math.floor(random() * 6);
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(random() * alphabet.length)];
    return s;
  };
  const sources = ['container', 'docker', 'reserved', 'a:b', ''];
  const forms = new Map<string, string>();
  let failures = 0;
  for (let i = 0; i < 20_000 && failures < 5; i++) {
    const labels: Label[] = [];
    const n = Math.floor(random() * 4);
    for (let j = 0; j < n; j++)
      labels.push({
        source: random() < 0.3 ? text() : sources[Math.floor(random() * sources.length)]!,
        key: text(),
        value: text(),
      });
    const set = new LabelSet(labels);
    const form = set.toCanonical();
    const back = LabelSet.fromCanonical(form);
    if (JSON.stringify(back.labels) !== JSON.stringify(set.labels)) {
      failures++;
      t.fail(`${JSON.stringify(set.labels)} -> ${JSON.stringify(form)} -> ${JSON.stringify(back.labels)}`);
    }
    const identity = JSON.stringify(set.labels);
    const seen = forms.get(form);
    if (seen !== undefined && seen !== identity) {
      failures++;
      t.fail(`${seen} and ${identity} share ${JSON.stringify(form)}`);
    }
    forms.set(form, identity);
  }
  t.equal(failures, 0, `${forms.size} distinct sets, each with its own form, each decoded exactly`);
});
