/**
 * The resync schedule (node-cron; the only module that imports it). Intervals must divide a
 * minute (seconds) or an hour (minutes) so they map onto a cron expression: 5m -> every 5th
 * minute, 30s -> every 30th second. Runs never overlap (node-cron's noOverlap).
 */
import { schedule, type ScheduledTask } from 'node-cron';
import { ConfigError } from '../util/errors.js';

/** The cron expression for an interval in milliseconds; throws ConfigError when none fits. */
export function cronExpressionFor(intervalMs: number): string {
  const seconds = intervalMs / 1000;
  if (Number.isInteger(seconds) && seconds >= 1 && seconds < 60 && 60 % seconds === 0) return `*/${seconds} * * * * *`;
  const minutes = seconds / 60;
  if (Number.isInteger(minutes) && minutes >= 1 && minutes < 60 && 60 % minutes === 0) return `*/${minutes} * * * *`;
  if (minutes === 60) return '0 * * * *';
  throw new ConfigError(
    `--resync-interval ${intervalMs} ms: use whole seconds dividing a minute (1s..30s) ` +
      'or whole minutes dividing an hour (1m..30m, 60m)',
  );
}

/** Runs `task` on the interval until stopped. */
export function scheduleEvery(intervalMs: number, name: string, task: () => Promise<void>): { stop(): void } {
  const job: ScheduledTask = schedule(cronExpressionFor(intervalMs), task, { name, noOverlap: true });
  return { stop: () => void job.stop() };
}
