// `--import` this next to Node's own `--experimental-transform-types` to run a TypeScript file of
// this repository without tap's ts-node loader (which type-checks or transpiles through the
// TypeScript compiler in a loader thread: seconds of CPU per process). The sources import each
// other as `./x.js` (TypeScript's NodeNext convention); this resolve hook maps such a specifier
// to the `.ts` file beside it when no `.js` file exists. Used for child processes of tests and
// benches (test/support/identity-race.ts).
import { existsSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { fileURLToPath } from 'node:url';

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('file:')) && context.parentURL?.startsWith('file:')) {
      const candidate = new URL(specifier.replace(/\.js$/, '.ts'), context.parentURL);
      if (!existsSync(fileURLToPath(new URL(specifier, context.parentURL))) && existsSync(fileURLToPath(candidate))) {
        return nextResolve(candidate.href, context);
      }
    }
    return nextResolve(specifier, context);
  },
});
