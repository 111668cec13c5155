/**
 * `GET /v1/version` (`cilium version`): the daemon's version and where it runs (node, Node.js,
 * kernel), as Cilium's `cilium version` prints its daemon line.
 */
import { release, version as kernelVersion } from 'node:os';
import type { VersionModel } from './models.js';
import type { RouteGroup } from './route-group.js';

/** The daemon's version model. */
export function versionModel(version: string, nodeName: string): VersionModel {
  return {
    version,
    node: nodeName,
    nodejs: process.version,
    platform: `${process.platform}/${process.arch}`,
    kernel: release(),
    kernelVersion: kernelVersion(),
  };
}

/** The `/v1/version` route of a daemon of `version` running as node `nodeName`. */
export function versionRoutes(version: string, nodeName: string): RouteGroup {
  return (routes) => {
    routes.get('/v1/version', async () => versionModel(version, nodeName));
  };
}
