/**
 * Structured logging (pino). Components take a child logger: `log.child({ component: 'ipam' })`.
 * This is the only module that imports pino.
 *
 * Errors are logged as the error itself, `log.warn({ err }, '...')`, never as their message: the
 * `err` key goes through pino's standard serializer, so the line keeps the class (`type`), the
 * message, the stack, the cause and every own field (a CiliumDockerError's `code` and `kind`).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

const level = process.env.CILIUM_DOCKER_LOG_LEVEL ?? 'info';

/** A root logger writing JSON lines to `destination` (the daemon's: stderr). */
export function createLogger(destination: DestinationStream, loggerLevel: string = level): Logger {
  return pino(
    { level: loggerLevel, base: { pid: process.pid }, serializers: { err: pino.stdSerializers.err } },
    destination,
  );
}

/** The process-wide root logger; writes JSON lines to stderr. */
export const log: Logger = createLogger(pino.destination(2));

/** Changes the level of the root logger (and every child made afterwards). */
export function setLogLevel(newLevel: string): void {
  log.level = newLevel;
}
