/**
 * The sources pass Biome's format and lint check (biome.jsonc), as `make check` runs it: a file
 * that is not formatted, or a lint finding, fails the suite with Biome's diagnostics. `make fmt`
 * formats everything and applies the safe fixes.
 *
 * Biome leaves a line longer than its lineWidth when it cannot break it (a long string, template or
 * regex literal, a comment), so the width is checked here too, over the files Biome checks.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, matchesGlob } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIOME = join(ROOT, 'node_modules', '@biomejs', 'biome', 'bin', 'biome');

t.test('biome ci: every source formatted, no lint finding (make fmt fixes the layout)', async (t) => {
  const run = await promisify(execFile)(
    process.execPath,
    [BIOME, 'ci', '--error-on-warnings', '--colors=off', '--max-diagnostics=100', '.'],
    { cwd: ROOT, maxBuffer: 64 << 20 },
  ).then(
    (out) => ({ code: 0, output: out.stdout + out.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({
      code: err.code ?? -1,
      output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }),
  );
  t.equal(run.code, 0, `biome ci failed; run \`make fmt\`, then fix what it reports:\n${run.output}`);
  t.match(run.output, /Checked \d+ files?/, 'biome looked at the sources');
});

/** biome.jsonc as JSON: its line and block comments removed (outside strings). */
function readJsonc(path: string): unknown {
  const text = readFileSync(path, 'utf8');
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      out += text.slice(start, i + 1);
    } else if (text.startsWith('//', i)) {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (text.startsWith('/*', i)) {
      i = text.indexOf('*/', i + 2) + 1;
    } else out += text[i];
  }
  return JSON.parse(out);
}

t.test('no line is wider than the formatter lineWidth in the files Biome checks', async (t) => {
  const config = readJsonc(join(ROOT, 'biome.jsonc')) as {
    files: { includes: string[] };
    formatter: { lineWidth: number };
  };
  const width = config.formatter.lineWidth;
  const includes = config.files.includes.filter((p) => !p.startsWith('!'));
  const excludes = config.files.includes.filter((p) => p.startsWith('!')).map((p) => p.replace(/^!+/, ''));
  // Biome reads .gitignore (vcs.useIgnoreFile): tracked and untracked files, less the ignored ones.
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
    .split('\0')
    .filter((f) => includes.some((p) => matchesGlob(f, p)) && !excludes.some((p) => matchesGlob(f, p)));
  const tooLong: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(join(ROOT, file), 'utf8');
    } catch {
      continue; // deleted in the work tree, not yet in the index
    }
    text.split('\n').forEach((line, i) => {
      const columns = [...line].length;
      if (columns > width) tooLong.push(`${file}:${i + 1}: ${columns} columns`);
    });
  }
  t.ok(files.length > 100, `${files.length} files matched biome.jsonc's includes`);
  t.same(
    tooLong,
    [],
    `lines over ${width} columns, which Biome cannot break: split a long string or template into ` +
      "'...' + '...' pieces (the same text), rewrap a comment",
  );
});
