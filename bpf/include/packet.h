/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: Ethernet + IPv4 headers by direct access (bounds-checked against data_end),
 * L4 ports with bpf_skb_load_bytes so that a non-linear skb still parses.
 */
#ifndef CILIUM_DOCKER_PACKET_H
#define CILIUM_DOCKER_PACKET_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

/* <linux/icmp.h> pulls in libc headers, which do not build for -target bpf. */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

/* The first 8 bytes of an ICMP echo request or reply (RFC 792). */
struct icmp_echo {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be16 id;
	__be16 sequence;
};

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* TCP flag bits as in byte 13 of the TCP header. */
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* What the datapath needs to know about an IPv4 packet. */
struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* ICMP echo request: identifier */
	__be16 dport; /* ICMP echo reply: identifier */
	__u8 protocol;
	__u8 tcp_flags;
	__u8 fragment; /* 1: a fragment; ports unknown (0), only L3 policy can match */
	__u8 icmp_type; /* ICMP: the message type (policy matches it as the port); else 0 */
};

/*
 * Makes the Ethernet and IPv4 headers directly readable and returns the Ethernet header, or
 * NULL when the packet is too short. Pulls non-linear data in when needed.
 */
static __always_inline struct ethhdr *eth_header(struct __sk_buff *skb, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data + len > data_end) {
		if (bpf_skb_pull_data(skb, len) < 0)
			return NULL;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		if (data + len > data_end)
			return NULL;
	}
	return data;
}

/* Fills f from the IPv4 packet in skb. Returns 0, or -DROP_INVALID for a malformed header. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	struct ethhdr *eth = eth_header(skb, sizeof(struct ethhdr) + sizeof(struct iphdr));
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph;
	__u32 l4_off;

	if (!eth)
		return -DROP_INVALID;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || iph->ihl < 5 || iph->version != 4)
		return -DROP_INVALID;

	f->saddr = iph->saddr;
	f->daddr = iph->daddr;
	f->protocol = iph->protocol;
	f->sport = 0;
	f->dport = 0;
	f->tcp_flags = 0;
	f->icmp_type = 0;
	f->fragment = (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
	if (f->fragment)
		return 0;

	l4_off = sizeof(struct ethhdr) + iph->ihl * 4;
	switch (f->protocol) {
	case IPPROTO_TCP: {
		__u8 hdr[14]; /* ports, seq, ack, data offset, flags */

		if (bpf_skb_load_bytes(skb, l4_off, hdr, sizeof(hdr)) < 0)
			return -DROP_INVALID;
		__builtin_memcpy(&f->sport, &hdr[0], 2);
		__builtin_memcpy(&f->dport, &hdr[2], 2);
		f->tcp_flags = hdr[13];
		break;
	}
	case IPPROTO_UDP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) < 0)
			return -DROP_INVALID;
		f->sport = ports[0];
		f->dport = ports[1];
		break;
	}
	case IPPROTO_ICMP: {
		struct icmp_echo icmp;

		if (bpf_skb_load_bytes(skb, l4_off, &icmp, sizeof(icmp)) < 0)
			return -DROP_INVALID;
		f->icmp_type = icmp.type;
		/* Echo request and reply are mirror images so that conntrack pairs them. */
		if (icmp.type == ICMP_ECHO)
			f->sport = icmp.id;
		else if (icmp.type == ICMP_ECHOREPLY)
			f->dport = icmp.id;
		break;
	}
	}
	return 0;
}

/* parse_frame's result for an ARP frame (when the caller accepts ARP). */
#define FRAME_ARP 1

/*
 * The L2/L3 preamble every program starts with: an Ethernet frame carrying IPv4, parsed into f.
 * Returns 0, FRAME_ARP for an ARP frame when accept_arp (the caller answers it or lets it pass;
 * without accept_arp ARP is an unsupported L3), or -DROP_INVALID / -DROP_UNSUPPORTED_L3 /
 * parse_ipv4's reason, for the caller to drop with (f holds what was parsed so far).
 */
static __always_inline int parse_frame(struct __sk_buff *skb, struct flow *f, const int accept_arp)
{
	struct ethhdr *eth = eth_header(skb, sizeof(struct ethhdr));

	if (!eth)
		return -DROP_INVALID;
	if (accept_arp && eth->h_proto == bpf_htons(ETH_P_ARP))
		return FRAME_ARP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -DROP_UNSUPPORTED_L3;
	return parse_ipv4(skb, f);
}

/*
 * The port policy sees. For ICMP it is the message type, as Cilium encodes `icmps` rules in its
 * policy map (protocol ICMP, the type in the port field): flow.sport/dport hold conntrack's echo
 * identifiers instead, which policy must not see. Entries without a protocol (L3-only) match
 * every type, so policies without `icmps` treat ICMP as before.
 */
static __always_inline __be16 policy_port(const struct flow *f)
{
	return f->protocol == IPPROTO_ICMP ? bpf_htons(f->icmp_type) : f->dport;
}

#endif /* CILIUM_DOCKER_PACKET_H */
