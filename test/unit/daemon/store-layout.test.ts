/**
 * One owner per store key prefix (src/daemon/store-layout.ts, docs/architecture.md "Store
 * layout"): every top-level `<name>/vN/` prefix is spelled in the code of exactly one file of
 * src/, the owner the document names; every other module imports the owner's constants, key
 * builders and parsers. Comments may name keys anywhere.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { STORE_LAYOUT_PREFIXES } from '../../../src/daemon/store-layout.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SRC = join(ROOT, 'src');

/** A quoted (', ", `) text that begins with a top-level key prefix. */
const PREFIX_LITERAL = /[`'"]([a-z][a-z0-9-]*\/v[0-9]+\/)/g;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The source without its comments (block comments and whole-line // comments). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

/** Top-level prefix -> the files of src/ (relative to it) whose code spells it. */
function spelledIn(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const file of files(SRC)) {
    for (const m of code(readFileSync(file, 'utf8')).matchAll(PREFIX_LITERAL)) {
      const set = out.get(m[1]!) ?? new Set<string>();
      set.add(relative(SRC, file));
      out.set(m[1]!, set);
    }
  }
  return out;
}

/** Prefix -> owner file, from the "Key prefixes and their owners" table of docs/architecture.md. */
function documentedOwners(): Map<string, string> {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of doc.matchAll(/^\| `([a-z][a-z0-9-]*\/v[0-9]+\/)` \| `([a-z/-]+\.ts)`/gm)) out.set(m[1]!, m[2]!);
  return out;
}

t.test('the comment stripper keeps code and drops comments', async (t) => {
  const text = "/** `ip/v1/<ip>` */\nconst A = 'ip/v1/';\n  // 'nodes/v1/'\nconst B = `x`; // trailing\n";
  t.same(
    [...code(text).matchAll(PREFIX_LITERAL)].map((m) => m[1]),
    ['ip/v1/'],
  );
});

t.test('every top-level key prefix is spelled in one file of src/, its owner', async (t) => {
  const spelled = spelledIn();
  t.ok(
    STORE_LAYOUT_PREFIXES.every((p) => spelled.has(p)),
    `the scan finds the layout (${[...spelled.keys()].join(', ')})`,
  );
  for (const [prefix, where] of spelled)
    t.equal(where.size, 1, `${prefix} is spelled once, not in ${[...where].join(', ')}`);
});

t.test('docs/architecture.md names the owner of every prefix, the file that declares it', async (t) => {
  const spelled = spelledIn();
  const owners = documentedOwners();
  t.same([...owners.keys()].sort(), [...spelled.keys()].sort(), 'one row per prefix the code spells');
  for (const [prefix, owner] of owners)
    t.same([...(spelled.get(prefix) ?? [])], [owner], `${prefix}: owned by ${owner}`);
});
