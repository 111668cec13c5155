/**
 * CiliumNetworkPolicy documents the datapath bench imports (YAML text for `POST /v1/policy`).
 */

/** One `toPorts[].ports[]` item. */
interface PortItem {
  port: number;
  endPort?: number;
}

function portsYaml(items: readonly PortItem[], indent: string): string {
  return items
    .map(
      (p) =>
        `${indent}- port: "${p.port}"\n` +
        `${p.endPort !== undefined ? `${indent}  endPort: ${p.endPort}\n` : ''}${indent}  protocol: TCP\n`,
    )
    .join('');
}

/**
 * `name`: endpoints with `selector` accept ingress from endpoints with `from` on TCP `ports`.
 * More than 40 port items (Cilium's per-toPorts limit) are split over several toPorts items.
 */
export function ingressAllowPolicy(
  name: string,
  selector: Record<string, string>,
  from: Record<string, string>,
  ports: readonly PortItem[],
): string {
  const labels = (l: Record<string, string>, indent: string) =>
    Object.entries(l)
      .map(([k, v]) => `${indent}${k}: ${v}\n`)
      .join('');
  const toPorts: string[] = [];
  for (let i = 0; i < ports.length; i += 40)
    toPorts.push(`    - ports:\n${portsYaml(ports.slice(i, i + 40), '      ')}`);
  return (
    'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n' +
    `metadata:\n  name: ${name}\n` +
    `spec:\n  endpointSelector:\n    matchLabels:\n${labels(selector, '      ')}` +
    `  ingress:\n  - fromEndpoints:\n    - matchLabels:\n${labels(from, '        ')}` +
    `    toPorts:\n${toPorts.join('')}`
  );
}

/**
 * Exactly `count` TCP ports from `first` as ranges of at most 64 (the compiler expands each into one entry per port).
 */
export function portBlock(first: number, count: number): PortItem[] {
  const items: PortItem[] = [];
  for (let p = first; p < first + count; p += 64) {
    const end = Math.min(p + 63, first + count - 1);
    items.push(end === p ? { port: p } : { port: p, endPort: end });
  }
  return items;
}

/**
 * `entries` policy map entries for the endpoints selected by `selector`, all allowing `from`
 * (one peer identity) on distinct TCP ports from `firstPort`, as `policies` separate policies
 * (`<prefix>-000`, ...), joined into one multi-document YAML text.
 */
export function fillerPolicies(
  prefix: string,
  selector: Record<string, string>,
  from: Record<string, string>,
  entries: number,
  policies: number,
  firstPort: number,
): string {
  const per = Math.ceil(entries / policies);
  const docs: string[] = [];
  for (let i = 0, port = firstPort, left = entries; left > 0; i++) {
    const n = Math.min(per, left);
    docs.push(ingressAllowPolicy(`${prefix}-${String(i).padStart(3, '0')}`, selector, from, portBlock(port, n)));
    port += n;
    left -= n;
  }
  if (firstPort + entries > 65536) throw new Error(`${entries} ports from ${firstPort} do not fit below 65536`);
  return docs.join('---\n');
}
