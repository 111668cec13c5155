/**
 * IANA protocol numbers as the CLI prints them.
 */

const names: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

/** `TCP`, `UDP`, ... for known protocol numbers; the number itself otherwise. */
export function protocolName(protocol: number): string {
  return names[protocol] ?? String(protocol);
}

/** Whether packets of this protocol carry ports (TCP, UDP, SCTP). */
export function protocolHasPorts(protocol: number): boolean {
  return protocol === 6 || protocol === 17 || protocol === 132;
}
