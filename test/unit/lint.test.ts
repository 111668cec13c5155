/**
 * The sources pass Biome's format and lint check (biome.jsonc), as `make check` runs it: a file
 * that is not formatted, or a lint finding, fails the suite with Biome's diagnostics. `make fmt`
 * formats everything and applies the safe fixes.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
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
