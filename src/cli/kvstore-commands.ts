/**
 * `cilium kvstore get|set|delete`: the cluster store through the daemon (whichever backend it
 * runs with), printed as Cilium prints it: one `key => value` line per key.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { KvstoreGetModel } from '../api/models.js';
import { apiClient, integerParser, outputFormat, outputOption, print, printJson } from './command-context.js';
import { escapeTerminalText } from './terminal-text.js';

/**
 * `key => value` lines, as Cilium's `cilium kvstore get`; keys and values escaped for the terminal
 * (a newline in a value would forge a line, an escape sequence would drive the terminal).
 */
export function renderKvstoreEntries(result: KvstoreGetModel): string {
  return result.entries.map((e) => `${escapeTerminalText(e.key)} => ${escapeTerminalText(e.value)}\n`).join('');
}

function parseLimit(value: string): number {
  const n = integerParser('--limit', 10_000)(value);
  if (n === 0) throw new InvalidArgumentError('--limit must be a whole number from 1 to 10000.');
  return n;
}

/** Adds `kvstore get|set|delete`. */
export function addKvstoreCommands(program: Command): void {
  const kvstore = program
    .command('kvstore')
    .description('the cluster key-value store (embedded, etcd or consul) through the daemon');

  kvstore
    .command('get <key>')
    .description('print a key, or with --recursive every key under a prefix ("" = all)')
    .option('--recursive', 'treat the key as a prefix')
    .option('--limit <n>', 'print at most this many keys (the daemon sends at most 10000)', parseLimit)
    .addOption(outputOption())
    .action(async (key: string, opts: { recursive?: boolean; limit?: number }, cmd: Command) => {
      const result = await apiClient(cmd).kvstoreGet(key, { recursive: opts.recursive, limit: opts.limit });
      if (outputFormat(cmd) === 'json') printJson(result);
      else print(renderKvstoreEntries(result));
      if (result.truncated)
        process.stderr.write(
          `showing ${result.entries.length} of ${result.total} keys; narrow the prefix to see the rest\n`,
        );
    });

  kvstore
    .command('set <key> [value]')
    .description('write a key (unconditional, not leased; bypasses every check of the daemon: an operator tool)')
    .option('--value <value>', 'the value (instead of the second argument)')
    .addOption(outputOption())
    .action(async (key: string, positional: string | undefined, opts: { value?: string }, cmd: Command) => {
      if ((positional === undefined) === (opts.value === undefined))
        cmd.error('error: give the value either as the second argument or with --value (exactly one of them)');
      const result = await apiClient(cmd).kvstoreSet(key, (positional ?? opts.value)!);
      if (outputFormat(cmd) === 'json') return printJson(result);
      print(`${escapeTerminalText(result.key)} set at revision ${result.revision}\n`);
    });

  kvstore
    .command('delete <key>')
    .description('delete a key, or with --recursive every key under a (non-empty) prefix')
    .option('--recursive', 'treat the key as a prefix')
    .addOption(outputOption())
    .action(async (key: string, opts: { recursive?: boolean }, cmd: Command) => {
      const result = await apiClient(cmd).kvstoreDelete(key, { recursive: opts.recursive });
      if (outputFormat(cmd) === 'json') return printJson(result);
      print(`deleted ${result.deleted} key${result.deleted === 1 ? '' : 's'}\n`);
    });
}
