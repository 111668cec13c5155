/**
 * What an endpoint takes from its container: the identity labels (container labels plus the
 * network's name) and the names DNS answers for (container name, aliases).
 */
import { LabelSet, SOURCE_DOCKER, type Label } from '../identity/labels.js';
import { containerLabels, type IgnoredContainerLabel } from '../identity/container-labels.js';
import type { ContainerInfo, EndpointRecord } from './endpoint.js';

/**
 * The endpoint's labels: each valid container label as `container:<Docker key>=<value>` (see
 * identity/container-labels.ts; no label text can choose another source), plus
 * `docker:network=<name>`; and the container labels left out.
 */
export function endpointLabels(info: ContainerInfo): { labels: LabelSet; ignored: IgnoredContainerLabel[] } {
  const { labels, ignored } = containerLabels(info.labels);
  const all: Label[] = [...labels, { source: SOURCE_DOCKER, key: 'network', value: info.networkName }];
  return { labels: new LabelSet(all), ignored };
}

/** Two label string lists are equal, element by element. */
export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Records the container's name and aliases on the endpoint; true when either changed. */
export function setNames(ep: EndpointRecord, info: ContainerInfo): boolean {
  const aliases = info.aliases && info.aliases.length > 0 ? [...info.aliases].sort() : undefined;
  const changed =
    ep.containerName !== info.containerName || (ep.aliases ?? []).join('\n') !== (aliases ?? []).join('\n');
  ep.containerName = info.containerName;
  if (aliases) ep.aliases = aliases;
  else delete ep.aliases;
  return changed;
}
