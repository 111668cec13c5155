/**
 * `cilium version`: the CLI's version and the daemon's (with its node and kernel), one line each,
 * after Cilium's `Client: ...` / `Daemon: ...`.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { VersionModel } from '../api/models.js';
import { apiClient, outputFormat, outputOption, print, printJson } from './command-context.js';
import { terminalLines } from './terminal-text.js';

/** The CLI's own version: package.json's (two levels up from src/cli/ and from dist/cli/). */
export function cliVersion(): { version: string; nodejs: string; platform: string } {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return { version, nodejs: process.version, platform: `${process.platform}/${process.arch}` };
}

/** The `Daemon:` line. */
export function daemonVersionLine(v: VersionModel): string {
  return `Daemon: ${v.version} node ${v.nodejs} ${v.platform}, node ${v.node}, kernel ${v.kernel}`;
}

/** Adds `version`. */
export function addVersionCommand(program: Command): void {
  program
    .command('version')
    .description("versions of this CLI and of the daemon, with the daemon's node and kernel")
    .addOption(outputOption())
    .action(async (_opts, cmd: Command) => {
      const client = cliVersion();
      const json = outputFormat(cmd) === 'json';
      // The client line first: it is the answer that needs no daemon.
      if (!json) print(`Client: ${client.version} node ${client.nodejs} ${client.platform}\n`);
      const daemon = await apiClient(cmd).version();
      if (json) return printJson({ client, daemon });
      print(terminalLines([daemonVersionLine(daemon)]));
    });
}
