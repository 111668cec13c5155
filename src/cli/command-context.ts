/**
 * What every `cilium` command shares: the API client for `--host`, the `-o` output format and
 * the writers for both formats.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ApiClient, DEFAULT_API_HOST } from '../api/client.js';
import { guardTerminalOutput, terminalJson } from './terminal-text.js';

/** `-o table` (default, for people) or `-o json` (for programs). */
export type OutputFormat = 'table' | 'json';

/** The client of the daemon named by `--host`, else CILIUM_HOST, else the default socket. */
export function apiClient(cmd: Command): ApiClient {
  const opts = cmd.optsWithGlobals<{ host?: string }>();
  return new ApiClient(opts.host ?? process.env.CILIUM_HOST ?? DEFAULT_API_HOST);
}

/** The command's `-o` format. */
export function outputFormat(cmd: Command): OutputFormat {
  return cmd.optsWithGlobals<{ output?: OutputFormat }>().output ?? 'table';
}

/** The `-o, --output` option every command takes. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table');
}

/**
 * Writes formatted text to stdout. Formatters escape daemon values (terminal-text.ts); a control
 * character that still got here is written as a visible escape, never raw.
 */
export function print(text: string): void {
  process.stdout.write(guardTerminalOutput(text));
}

/** Writes a value as indented JSON and a newline (terminal-safe, see terminalJson). */
export function printJson(value: unknown): void {
  print(`${terminalJson(value, 2)}\n`);
}

/**
 * Option parser for list options given comma-separated, repeated, or both
 * (`--type drop,trace --type policy-verdict`).
 */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== ''),
  ];
}

/** Option/argument parser for a non-negative integer up to `max`. */
export function integerParser(what: string, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) > max)
      throw new InvalidArgumentError(`${what} must be a whole number from 0 to ${max}.`);
    return Number(value);
  };
}
