/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN encapsulation written by the program itself (cfg_underlay_ifindex set): the outer
 * IPv4/UDP/VXLAN headers and the inner Ethernet header go in front of the packet with
 * bpf_skb_adjust_room (which marks the skb as a UDP tunnel packet, so GSO segments it like the
 * kernel's own VXLAN device would), and bpf_redirect_neigh hands it to the underlay device's
 * neighbour entry for the peer. Nothing on the way out looks up a route or runs the IP output
 * path; the receiving node's tunnel device cannot tell this from its own kind of sender.
 */
#ifndef CILIUM_DOCKER_ENCAP_H
#define CILIUM_DOCKER_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "config.h"

#ifndef AF_INET
#define AF_INET 2
#endif

#define VXLAN_FLAG_VNI 0x08000000 /* RFC 7348: the I flag, the VNI is valid */
#define IP_DF 0x4000

/* What goes between the packet's Ethernet header (now the outer one) and its IPv4 header. */
struct vxlan_encap {
	struct iphdr ip;
	struct udphdr udp;
	__be32 vx_flags;
	__be32 vx_vni; /* VNI << 8 */
	struct ethhdr inner;
};
#define VXLAN_ENCAP_LEN (sizeof(struct iphdr) + sizeof(struct udphdr) + 8 + sizeof(struct ethhdr))
_Static_assert(__builtin_offsetof(struct vxlan_encap, inner) + sizeof(struct ethhdr) == 50,
	       "VXLAN over IPv4 adds 50 bytes");

static __always_inline __u16 ipv4_header_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*iph) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * Encapsulates skb (an Ethernet + IPv4 frame at ingress of a container's veth) for the node at
 * tunnel_endpoint with the given VNI and redirects it to nexthop (0: tunnel_endpoint itself) on
 * the underlay device. Returns the redirect verdict, or a negative errno when the packet could
 * not be rewritten (the caller drops it).
 */
static __always_inline long vxlan_encap_redirect(struct __sk_buff *skb, __be32 tunnel_endpoint,
						 __be32 nexthop, __u32 vni)
{
	const __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
			    BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
			    BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr));
	struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = nexthop ?: tunnel_endpoint };
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct vxlan_encap h;
	/* The inner flow's hash picks the source port (RFC 7348 5): ECMP and RSS spread flows. */
	__u32 hash = bpf_get_hash_recalc(skb);
	long err;

	if (data + sizeof(struct ethhdr) > data_end)
		return -1;
	__builtin_memcpy(&h.inner, data, sizeof(struct ethhdr));
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tos = 0;
	h.ip.tot_len = bpf_htons(skb->len - sizeof(struct ethhdr) + VXLAN_ENCAP_LEN);
	h.ip.id = 0;
	h.ip.frag_off = bpf_htons(IP_DF);
	h.ip.ttl = 64;
	h.ip.protocol = IPPROTO_UDP;
	h.ip.check = 0;
	h.ip.saddr = bpf_htonl(cfg_underlay_saddr);
	h.ip.daddr = tunnel_endpoint;
	h.ip.check = ipv4_header_csum(&h.ip);
	h.udp.source = bpf_htons(0xc000 | ((hash >> 16) & 0x3fff));
	h.udp.dest = bpf_htons(cfg_tunnel_port);
	h.udp.len = bpf_htons(skb->len - sizeof(struct ethhdr) + VXLAN_ENCAP_LEN - sizeof(struct iphdr));
	h.udp.check = 0; /* allowed for VXLAN over IPv4, as the kernel's device sends it */
	h.vx_flags = bpf_htonl(VXLAN_FLAG_VNI);
	h.vx_vni = bpf_htonl(vni << 8);

	err = bpf_skb_adjust_room(skb, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, flags);
	if (err < 0)
		return err;
	err = bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &h, VXLAN_ENCAP_LEN, 0);
	if (err < 0)
		return err;
	return bpf_redirect_neigh(cfg_underlay_ifindex, &nh, sizeof(nh), 0);
}

#endif /* CILIUM_DOCKER_ENCAP_H */
