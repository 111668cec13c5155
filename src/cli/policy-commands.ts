/**
 * `cilium policy ...`: import, get, delete, trace and wait for CiliumNetworkPolicy documents.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { TraceRequestModel } from '../api/models.js';
import {
  apiClient,
  collectList,
  integerParser,
  outputFormat,
  outputOption,
  print,
  printJson,
} from './command-context.js';
import { terminalJson, terminalLines } from './terminal-text.js';

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a Go-style duration (`500ms`, `30s`, `2m`, `1m30s`) into milliseconds, as Cilium's flags
 * take them. A bare number is refused rather than guessed at.
 */
export function parseDuration(text: string): number {
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(text) ? [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)] : [];
  if (parts.length === 0)
    throw new InvalidArgumentError(`"${text}" is not a duration; use e.g. 500ms, 30s, 2m or 1m30s.`);
  return Math.round(parts.reduce((ms, [, amount, unit]) => ms + Number(amount) * durationUnits[unit], 0));
}

function parseProtocol(value: string): TraceRequestModel['protocol'] {
  const upper = value.toUpperCase();
  if (upper !== 'TCP' && upper !== 'UDP' && upper !== 'ANY')
    throw new InvalidArgumentError('Allowed choices are TCP, UDP, ANY.');
  return upper;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readPolicyText(file: string): Promise<string> {
  if (file === '-') return readStdin();
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read policy file "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * `cilium policy get|delete` arguments: one word is a policy name (names have no `=` or `:`);
 * anything else is a list of labels (`name=l3-rule`, `unspec:name=l3-rule`), as in Cilium.
 */
export function policySelection(args: readonly string[]): { name?: string; labels?: string[] } {
  if (args.length === 0) return {};
  if (args.length === 1 && !/[=:]/.test(args[0]!)) return { name: args[0]! };
  return { labels: [...args] };
}

/** Adds `cilium policy import|get|delete|trace|wait`. */
export function addPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('CiliumNetworkPolicy management');

  policy
    .command('import <file>')
    .description('import CiliumNetworkPolicy YAML or JSON from a file, or from stdin with "-"')
    .addOption(outputOption())
    .action(async (file: string, _opts, cmd: Command) => {
      const result = await apiClient(cmd).importPolicy(await readPolicyText(file));
      if (outputFormat(cmd) === 'json') return printJson(result);
      print(`Revision: ${result.revision}\n`);
    });

  policy
    .command('get [name-or-labels...]')
    .description(
      'the stored policies: all, the one named, ' +
        'or those with rules carrying all the labels given (key=value or source:key=value)',
    )
    .addOption(outputOption())
    .action(async (args: string[], _opts, cmd: Command) => {
      const selection = policySelection(args);
      const client = apiClient(cmd);
      const list = selection.labels
        ? await client.getPolicyByLabels(selection.labels)
        : await client.getPolicy(selection.name);
      if (outputFormat(cmd) === 'json') return printJson(list);
      print(`Revision: ${list.revision}\n${terminalJson(list.policies, 2)}\n`);
    });

  policy
    .command('delete [name-or-labels...]')
    .description(
      'delete the named policy, the policies whose rules carry all the labels given (key=value or ' +
        'source:key=value), or every policy with --all',
    )
    .option('--all', 'delete every policy')
    .addOption(outputOption())
    .action(async (args: string[], opts: { all?: boolean }, cmd: Command) => {
      if (args.includes('') || (args.length === 0) === !opts.all)
        cmd.error('error: give either a policy name, labels, or --all (exactly one of them)');
      const client = apiClient(cmd);
      const selection = policySelection(args);
      const result = selection.labels
        ? await client.deletePolicyByLabels(selection.labels)
        : selection.name === undefined
          ? await client.deleteAllPolicies()
          : await client.deletePolicy(selection.name);
      if (outputFormat(cmd) === 'json') return printJson(result);
      print(`Revision: ${result.revision}\n`);
    });

  policy
    .command('trace')
    .description('would traffic from the source labels to the destination labels be allowed, and which rule decides?')
    .requiredOption(
      '-s, --src-labels <labels>',
      'source labels, key=value or source:key=value (comma-separated or repeated)',
      collectList,
    )
    .requiredOption('-d, --dst-labels <labels>', 'destination labels (comma-separated or repeated)', collectList)
    .option('--dport <port>', 'destination port, 0 = any', integerParser('--dport', 65535), 0)
    .addOption(new Option('--protocol <protocol>', 'TCP, UDP or ANY').argParser(parseProtocol).default('ANY'))
    .addOption(outputOption())
    .action(
      async (
        opts: { srcLabels: string[]; dstLabels: string[]; dport: number; protocol: TraceRequestModel['protocol'] },
        cmd: Command,
      ) => {
        const trace = await apiClient(cmd).tracePolicy({
          srcLabels: opts.srcLabels,
          dstLabels: opts.dstLabels,
          dport: opts.dport,
          protocol: opts.protocol,
        });
        if (outputFormat(cmd) === 'json') return printJson(trace);
        // The verdict is the answer, not a failure: exit 0 either way (Cilium does the same).
        print(terminalLines(trace.explanation));
      },
    );

  policy
    .command('wait')
    .description('wait until every local endpoint applied a policy revision')
    .argument(
      '<revision>',
      'policy revision (as printed by import or delete)',
      integerParser('revision', Number.MAX_SAFE_INTEGER),
    )
    .addOption(
      new Option('--timeout <duration>', 'give up after this long (e.g. 30s, 2m)')
        .argParser(parseDuration)
        .default(30_000, '30s'),
    )
    .addOption(outputOption())
    .action(async (revision: number, opts: { timeout: number }, cmd: Command) => {
      const result = await apiClient(cmd).waitPolicy(revision, opts.timeout);
      if (outputFormat(cmd) === 'json') return printJson(result);
      print(
        `Revision ${result.revision} applied to ${result.endpoints} endpoint${result.endpoints === 1 ? '' : 's'}\n`,
      );
    });
}
