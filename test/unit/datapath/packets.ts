/**
 * Ethernet frames for BPF_PROG_TEST_RUN: IPv4 with TCP, UDP or ICMP echo, and ARP requests.
 * Checksums are left zero: the programs never verify them.
 */
import { ipv4Bytes, macBytes } from '../../../src/datapath/bpf/abi.js';

export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;

/** An IPv4 packet to build. */
export interface Ipv4Spec {
  srcMac: string;
  dstMac: string;
  saddr: string;
  daddr: string;
  protocol: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  /** ICMP: 8 echo request (default), 0 echo reply. */
  icmpType?: number;
  icmpId?: number;
  /** A non-first fragment (offset 8 bytes): no L4 header. */
  fragment?: boolean;
}

const protocolNumber = { tcp: 6, udp: 17, icmp: 1 } as const;

function ethernet(dstMac: string, srcMac: string, etherType: number): Buffer {
  const eth = Buffer.alloc(14);
  macBytes(dstMac).copy(eth, 0);
  macBytes(srcMac).copy(eth, 6);
  eth.writeUInt16BE(etherType, 12);
  return eth;
}

/** Ethernet + IPv4 + L4 header + 16 bytes of payload. */
export function ipv4Packet(spec: Ipv4Spec): Buffer {
  let l4: Buffer;
  if (spec.fragment) {
    l4 = Buffer.alloc(8);
  } else if (spec.protocol === 'tcp') {
    l4 = Buffer.alloc(20);
    l4.writeUInt16BE(spec.sport ?? 40000, 0);
    l4.writeUInt16BE(spec.dport ?? 80, 2);
    l4.writeUInt8(5 << 4, 12);
    l4.writeUInt8(spec.tcpFlags ?? TCP_SYN, 13);
  } else if (spec.protocol === 'udp') {
    l4 = Buffer.alloc(8);
    l4.writeUInt16BE(spec.sport ?? 40000, 0);
    l4.writeUInt16BE(spec.dport ?? 53, 2);
    l4.writeUInt16BE(8 + 16, 4);
  } else {
    l4 = Buffer.alloc(8);
    l4.writeUInt8(spec.icmpType ?? 8, 0);
    l4.writeUInt16BE(spec.icmpId ?? 77, 4);
  }
  const payload = Buffer.alloc(16, 0xab);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + l4.length + payload.length, 2);
  if (spec.fragment) ip.writeUInt16BE(1, 6); // fragment offset 1 (x 8 bytes)
  ip.writeUInt8(64, 8);
  ip.writeUInt8(protocolNumber[spec.protocol], 9);
  ipv4Bytes(spec.saddr).copy(ip, 12);
  ipv4Bytes(spec.daddr).copy(ip, 16);
  return Buffer.concat([ethernet(spec.dstMac, spec.srcMac, 0x0800), ip, l4, payload]);
}

/** A broadcast ARP request: who has targetIp, tell senderIp (at srcMac). */
export function arpRequest(srcMac: string, senderIp: string, targetIp: string): Buffer {
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // Ethernet
  arp.writeUInt16BE(0x0800, 2); // IPv4
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(1, 6); // request
  macBytes(srcMac).copy(arp, 8);
  ipv4Bytes(senderIp).copy(arp, 14);
  ipv4Bytes(targetIp).copy(arp, 24);
  return Buffer.concat([ethernet('ff:ff:ff:ff:ff:ff', srcMac, 0x0806), arp]);
}
