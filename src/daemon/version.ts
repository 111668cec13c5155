/** The daemon's version, package.json's (`cilium version`, `cilium status`, the ready log line). */
import { readFileSync } from 'node:fs';

/** `version` of the package.json at the repository's (or installation's) root. */
export const DAEMON_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
