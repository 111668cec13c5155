/**
 * Structured logging (pino). Components take a child logger: `log.child({ component: 'ipam' })`.
 * This is the only module that imports pino.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const level = process.env.CILIUM_DOCKER_LOG_LEVEL ?? 'info';

/** The process-wide root logger; writes JSON lines to stderr. */
export const log: Logger = pino({ level, base: { pid: process.pid } }, pino.destination(2));

/** Changes the level of the root logger (and every child made afterwards). */
export function setLogLevel(newLevel: string): void {
  log.level = newLevel;
}
