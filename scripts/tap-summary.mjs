// Reads the TAP stream that `tap --reporter=tap` printed and prints one plain line
// "N passed, N failed". A test is a top-level subtest of a test file (a `t.test(...)` block, or a
// file with only top-level assertions counts each assertion). A file that failed without a
// failing subtest (it crashed, timed out, or exited non-zero) counts as one failure.
// With CI=true, skipped tests count as failures: in CI nothing may be skipped.
// Exit status: 0 if nothing failed, 1 otherwise.
import { readFileSync } from 'node:fs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n');
const ci = process.env.CI === 'true';
let passed = 0;
let failed = 0;
let fileFailures = 0;
const skipped = [];
for (const line of lines) {
  const inner = /^ {4}(not ok|ok) \d+ (?:- )?(.*)$/.exec(line);
  if (inner) {
    const [, status, rest] = inner;
    const skip = /# (SKIP|TODO)\b/i.test(rest);
    if (skip) {
      skipped.push(rest);
      if (ci) failed++;
    } else if (status === 'ok') passed++;
    else {
      failed++;
      fileFailures++;
    }
    continue;
  }
  const top = /^(not ok|ok) \d+ (?:- )?(.*)$/.exec(line);
  if (top) {
    if (top[1] === 'not ok' && fileFailures === 0) failed++;
    fileFailures = 0;
  }
}
if (skipped.length) console.log(`# skipped: ${skipped.length}${ci ? ' (counted as failures: CI=true)' : ''}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
