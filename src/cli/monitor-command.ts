/**
 * `cilium monitor`: streams datapath events until Ctrl-C or until the daemon ends the stream.
 */
import type { Command } from 'commander';
import { apiClient, collectList, outputFormat, outputOption, print } from './command-context.js';
import { formatMonitorEvent } from './monitor-format.js';
import { terminalJson } from './terminal-text.js';

/** Adds `cilium monitor [--type T]... [-o json]`. */
export function addMonitorCommand(program: Command): void {
  program
    .command('monitor')
    .description('stream datapath events (drops, policy verdicts, traces) until Ctrl-C')
    .option(
      '-t, --type <types>',
      'event types to show: drop, policy-verdict, trace (repeatable or comma-separated; default all)',
      collectList,
    )
    .addOption(outputOption())
    .action(async (opts: { type?: string[] }, cmd: Command) => {
      const json = outputFormat(cmd) === 'json';
      const stream = apiClient(cmd).monitor(opts.type, (event) =>
        print(`${json ? terminalJson(event) : formatMonitorEvent(event)}\n`),
      );
      const stop = () => stream.close();
      // Ctrl-C and a closed stdout (`cilium monitor | head`) end the stream; both are normal exits.
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      process.stdout.on('error', stop);
      if (!json && process.stderr.isTTY)
        process.stderr.write(`Listening for events (${opts.type?.join(', ') || 'all types'}); press Ctrl-C to quit\n`);
      try {
        await stream.done;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        process.stdout.off('error', stop);
      }
    });
}
