#!/usr/bin/env python3
"""One ICMP echo with the Don't Fragment bit set, of an exact IP packet size.

    df-ping.py DST TOTAL_IP_BYTES [TIMEOUT_S]

Run inside a container's network namespace (nsenter --net=...): busybox ping cannot set DF
(no -M) and the lab machine has no iputils ping. The socket uses IP_PMTUDISC_DO, so the kernel
neither fragments the packet nor lets it leave when it exceeds the route's MTU.

Prints one line and exits with:
  0  "reply N bytes"     an echo reply with our id and sequence came back
  1  "timeout"           nothing came back (dropped somewhere on the way)
  3  "EMSGSIZE mtu=M"    the kernel refused to send: the packet is larger than the path MTU M
"""
import errno
import os
import select
import socket
import struct
import sys
import time

IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
IP_MTU = 14
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
IP_HEADER = 20
ICMP_HEADER = 8


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += bytes(1)
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main() -> int:
    dst = sys.argv[1]
    total = int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    payload = bytes((i & 0xFF for i in range(total - IP_HEADER - ICMP_HEADER)))
    ident = os.getpid() & 0xFFFF
    seq = 1
    header = struct.pack('!BBHHH', ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    packet = struct.pack('!BBHHH', ICMP_ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload

    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    sock.connect((dst, 0))
    try:
        sock.send(packet)
    except OSError as e:
        if e.errno == errno.EMSGSIZE:
            print('EMSGSIZE mtu=%d' % sock.getsockopt(socket.IPPROTO_IP, IP_MTU))
            return 3
        raise
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print('timeout')
            return 1
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        data = sock.recv(65535)
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, rid, rseq = struct.unpack('!BBHHH', data[ihl:ihl + ICMP_HEADER])
        if kind == ICMP_ECHO_REPLY and rid == ident and rseq == seq:
            print('reply %d bytes' % len(data))
            return 0


if __name__ == '__main__':
    sys.exit(main())
