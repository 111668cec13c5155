// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The programs on a container's host-side veth (lxc*). One object is loaded once and shared by
 * every endpoint: a program finds its endpoint through cilium_endpoints (the packet's container
 * address, checked against skb->ifindex), so nothing per endpoint is compiled in.
 *
 *   from_container  tc ingress of lxc*: traffic the container sends. Answers ARP; validates the
 *                   source; egress policy; conntrack; a local destination gets its ingress policy
 *                   checked here and the packet goes straight into its netns (bpf_redirect_peer);
 *                   anything else goes to the host stack for routing.
 *                   A destination behind another node (an ipcache entry with a tunnel endpoint)
 *                   is encapsulated for the peer node's underlay address with the source's
 *                   security identity as the VNI: by this program (encap.h, straight to the
 *                   underlay device's neighbour) or, without cfg_underlay_ifindex or for a peer
 *                   the underlay device does not reach, by the tunnel device (tunnel key).
 *   to_container    tc egress of lxc*: traffic the host stack delivers to the container. Ingress
 *                   policy and conntrack.
 *   from_overlay    tc ingress of the tunnel device (cilium_vxlan): decapsulated traffic from
 *                   other nodes. The VNI is the sender's security identity; the destination
 *                   endpoint's ingress policy runs here (the same code as for a local sender),
 *                   then the packet goes straight into the container's netns. Another node's host
 *                   sends through a kernel route into the tunnel with the VNI remote-node (kept
 *                   only from that node's own address); a packet for this host's own address
 *                   goes up the stack.
 *   from_underlay   tc ingress of the underlay device (encapsulation in BPF): VXLAN packets for
 *                   a local endpoint are decapsulated and delivered as from_overlay does; the
 *                   rest passes on to the stack (and to the tunnel device).
 *
 * One object for the container and the overlay programs, not a separate overlay object as
 * maps.h's pinning allows: from_overlay and from_underlay deliver through the same ingress-policy,
 * conntrack and redirect code as from_container's local path (deliver_from_overlay,
 * enforce_policy), and all four take the same load-time constants (tunnel and underlay ifindex,
 * underlay address, port). A re-created tunnel or underlay device therefore reloads all of them
 * (src/datapath/bpf-loader.ts); one object keeps that a single load and verification, with one set
 * of constants, instead of two loads that must agree.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "config.h"
#include "maps.h"
#include "packet.h"
#include "events.h"
#include "conntrack.h"
#include "eps.h"
#include "policy.h"
#include "encap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ring-buffer records have no map type to carry them into BTF; this reference does (bpf2go's idiom). */
const struct event *unused_event_btf_anchor __attribute__((unused));
/* cilium_metrics is indexed by a __u32 whose bytes are this struct (events.h, metrics_index). */
const struct metrics_key *unused_metrics_key_btf_anchor __attribute__((unused));

/* ARP constants (<linux/if_arp.h> pulls in libc headers, which do not build for -target bpf). */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

/* An ARP packet for IPv4 over Ethernet (RFC 826). */
struct arp_ipv4 {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

static __always_inline int mac_is_zero(const __u8 *mac)
{
	return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]);
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

/*
 * Answers an ARP request from the container for any IPv4 target with the lxc device's MAC, so
 * the gateway and same-subnet peers resolve without proxy_arp; every packet then comes to this
 * program. Requests that are not ours to answer go to the stack unchanged.
 */
static __always_inline int answer_arp(struct __sk_buff *skb)
{
	struct ethhdr *eth = eth_header(skb, sizeof(struct ethhdr) + sizeof(struct arp_ipv4));
	const struct endpoint_info *ep;
	struct arp_ipv4 *arp;
	__be32 sip, tip;

	if (!eth)
		return TC_ACT_OK;
	arp = (void *)(eth + 1);
	if ((void *)(arp + 1) > (void *)(long)skb->data_end)
		return TC_ACT_OK;
	if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4 ||
	    arp->ar_op != bpf_htons(ARPOP_REQUEST))
		return TC_ACT_OK;
	sip = arp->spa;
	tip = arp->tpa;
	if (sip == tip) /* gratuitous ARP: nothing to answer */
		return TC_ACT_OK;
	ep = lookup_endpoint(sip);
	if (!ep || ep->ifindex != skb->ifindex)
		return TC_ACT_OK;

	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, ep->node_mac, ETH_ALEN);
	arp->ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->sha, ep->node_mac, ETH_ALEN);
	arp->tpa = sip;
	arp->spa = tip;
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * Runs ep's policy for one direction and reports the verdict on a connection's first packet.
 * Returns 0 to allow or a DROP_* reason; a drop of an established connection (the policy changed
 * under it) marks its conntrack entry denied (ct_deny: kept, so a reply in flight cannot
 * re-create it reversed and turn the sender's packets into unpoliced replies).
 */
static __always_inline int enforce_policy(struct __sk_buff *skb, const struct flow *f,
					  const struct endpoint_info *ep, __u8 direction,
					  __u32 peer_identity, __u32 peer_net_id,
					  const struct event_subject *who, enum ct_state state)
{
	struct policy_verdict v;
	int enforced;

	policy_check(ep, direction, peer_identity, peer_net_id, f, &v, &enforced);
	if (enforced && (state == CT_NEW || v.drop_reason))
		notify_policy_verdict(skb, f, who, v.match, v.drop_reason ? VERDICT_DENY : VERDICT_ALLOW,
				      v.cookie);
	if (v.drop_reason && state == CT_ESTABLISHED)
		ct_deny(f);
	return v.drop_reason;
}

/* Records the packet in conntrack after policy allowed it. Returns 0 or a DROP_* reason. */
static __always_inline int ct_account(const struct flow *f, __u32 len, struct ct_entry *ct,
				      enum ct_state state, __u32 src_identity, __u32 now)
{
	if (state == CT_NEW)
		return -ct_create(f, len, src_identity, now);
	ct_update(ct, f, len, state, now);
	return 0;
}

/*
 * Sends the packet to another node: outer destination = that node's underlay address, VNI = the
 * sender's security identity (Cilium's encoding, so identities must fit in 24 bits). Written here
 * and handed to the underlay neighbour (cfg_underlay_ifindex, unless the ipcache says the peer is
 * only reachable through the tunnel device), else through the tunnel device, which routes each
 * packet. The receiving node's from_underlay or from_overlay reads the identity back.
 */
static __always_inline int encapsulate(struct __sk_buff *skb, const struct flow *f,
				       const struct event_subject *who, const struct peer *dst,
				       __u32 src_identity)
{
	struct bpf_tunnel_key key = {
		.tunnel_id = src_identity,
		.remote_ipv4 = bpf_ntohl(dst->tunnel_endpoint),
		.tunnel_ttl = 64,
	};
	long verdict;

	if (cfg_underlay_ifindex && dst->tunnel_nexthop != TUNNEL_NEXTHOP_DEVICE) {
		trace_forward(skb, f, who, TRACE_TO_OVERLAY); /* before: the headers change */
		verdict = vxlan_encap_redirect(skb, dst->tunnel_endpoint, dst->tunnel_nexthop,
					       src_identity);
		if (verdict < 0)
			return drop_packet(skb, f, who, DROP_WRITE_ERROR);
		return verdict;
	}
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return drop_packet(skb, f, who, DROP_WRITE_ERROR);
	trace_forward(skb, f, who, TRACE_TO_OVERLAY); /* counts it as forwarded, egress */
	return bpf_redirect(cfg_tunnel_ifindex, 0);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct event_subject who = { .direction = DIR_EGRESS };
	struct event_subject dst_who = { .direction = DIR_INGRESS };
	const struct endpoint_info *src;
	struct flow f = {};
	struct peer dst;
	struct ct_entry *ct;
	enum ct_state state;
	struct ethhdr *eth;
	__u32 now;
	int reason;

	reason = parse_frame(skb, &f, 1);
	if (reason == FRAME_ARP)
		return answer_arp(skb);
	if (reason)
		return drop_packet(skb, &f, &who, -reason);

	src = lookup_endpoint(f.saddr);
	if (!src || src->ifindex != skb->ifindex)
		return drop_packet(skb, &f, &who, DROP_INVALID_SIP);
	who.ep_id = src->ep_id;
	who.src_identity = src->sec_identity;
	eth = eth_header(skb, sizeof(struct ethhdr)); /* parsing may have moved the data */
	if (!eth)
		return drop_packet(skb, &f, &who, DROP_INVALID);
	if (!mac_is_zero(src->mac) && !mac_equal(eth->h_source, src->mac))
		return drop_packet(skb, &f, &who, DROP_INVALID_SMAC);

	resolve_peer(f.daddr, &dst);
	who.dst_identity = dst.identity;
	state = ct_lookup(&f, &ct, &now);
	if (state != CT_REPLY) {
		reason = enforce_policy(skb, &f, src, POLICY_EGRESS, dst.identity, dst.net_id, &who,
					state);
		if (reason)
			return drop_packet(skb, &f, &who, reason);
		if (dst.local) {
			/* Delivery skips to_container, so the destination's ingress policy runs here. */
			dst_who.ep_id = dst.local->ep_id;
			dst_who.src_identity = src->sec_identity;
			dst_who.dst_identity = dst.identity;
			reason = enforce_policy(skb, &f, dst.local, POLICY_INGRESS, src->sec_identity,
						src->net_id, &dst_who, state);
			if (reason)
				return drop_packet(skb, &f, &dst_who, reason);
		}
	}
	reason = ct_account(&f, skb->len, ct, state, src->sec_identity, now);
	if (reason)
		return drop_packet(skb, &f, &who, reason);

	if (!dst.local && dst.tunnel_endpoint && cfg_tunnel_ifindex)
		return encapsulate(skb, &f, &who, &dst, src->sec_identity);

	if (dst.local && !mac_is_zero(dst.local->mac)) {
		eth = eth_header(skb, sizeof(struct ethhdr));
		if (!eth)
			return drop_packet(skb, &f, &who, DROP_INVALID);
		__builtin_memcpy(eth->h_dest, dst.local->mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, dst.local->node_mac, ETH_ALEN);
		metrics_count(REASON_FORWARDED, DIR_EGRESS, skb->len);
		dst_who.ep_id = dst.local->ep_id;
		dst_who.src_identity = src->sec_identity;
		dst_who.dst_identity = dst.identity;
		trace_forward(skb, &f, &dst_who, TRACE_TO_ENDPOINT);
		/* Straight into the peer's netns, ingress to ingress, no backlog queue. */
		return bpf_redirect_peer(dst.local->ifindex, 0);
	}
	/* Neither a container nor the host: the world sees the host's address (one static rule). */
	if (!dst.local && dst.net_id == 0 && dst.identity != IDENTITY_HOST)
		skb->mark = (skb->mark & ~MARK_MASQUERADE_MASK) | MARK_MASQUERADE;
	trace_forward(skb, &f, &who, TRACE_TO_STACK);
	return TC_ACT_OK;
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	struct event_subject who = { .direction = DIR_INGRESS };
	const struct endpoint_info *dst;
	struct flow f = {};
	struct peer src;
	struct ct_entry *ct;
	enum ct_state state;
	__u32 now;
	int reason;

	reason = parse_frame(skb, &f, 1);
	if (reason == FRAME_ARP)
		return TC_ACT_OK;
	if (reason)
		return drop_packet(skb, &f, &who, -reason);

	dst = lookup_endpoint(f.daddr);
	if (!dst || dst->ifindex != skb->ifindex)
		return drop_packet(skb, &f, &who, DROP_NO_LOCAL_ENDPOINT);
	who.ep_id = dst->ep_id;
	who.dst_identity = dst->sec_identity;
	resolve_peer(f.saddr, &src);
	who.src_identity = src.identity;

	state = ct_lookup(&f, &ct, &now);
	if (state != CT_REPLY) {
		reason = enforce_policy(skb, &f, dst, POLICY_INGRESS, src.identity, src.net_id, &who,
					state);
		if (reason)
			return drop_packet(skb, &f, &who, reason);
	}
	reason = ct_account(&f, skb->len, ct, state, src.identity, now);
	if (reason)
		return drop_packet(skb, &f, &who, reason);
	trace_forward(skb, &f, &who, TRACE_TO_ENDPOINT);
	return TC_ACT_OK;
}

/*
 * The identity a node's own traffic keeps (VNI remote-node: another node's host, through its
 * route into the tunnel): only as long as the inner source is that node's address, as the ipcache
 * knows it, and the packet came from that node. Anything else a node puts into the tunnel with
 * that VNI (traffic it forwards for others) is the world. The local host identity never arrives
 * over a tunnel (it would pass every ingress policy): the world too.
 */
static __always_inline __u32 node_identity(const struct flow *f, __u32 outer_saddr, __u32 vni)
{
	const struct ipcache_entry *src;

	if (vni != IDENTITY_REMOTE_NODE)
		return IDENTITY_WORLD;
	src = lookup_ipcache(f->saddr);
	if (!src || src->sec_identity != IDENTITY_REMOTE_NODE ||
	    src->tunnel_endpoint != bpf_htonl(outer_saddr))
		return IDENTITY_WORLD;
	return IDENTITY_REMOTE_NODE;
}

/*
 * A decapsulated packet for no local endpoint: one for this host itself (a container on another
 * node talking to this node's address, or answering this host) goes up the stack; the rest is
 * dropped.
 */
static __always_inline int to_this_host(struct __sk_buff *skb, const struct flow *f,
					const struct event_subject *who)
{
	const struct ipcache_entry *dst = lookup_ipcache(f->daddr);

	if (!dst || dst->sec_identity != IDENTITY_HOST || dst->tunnel_endpoint)
		return drop_packet(skb, f, who, DROP_NO_LOCAL_ENDPOINT);
	/*
	 * The inner frame is addressed to the sending container's gateway MAC on the other node, so
	 * the device took it for another host's; the stack drops such frames before IP. It is ours.
	 */
	if (skb->pkt_type != PACKET_HOST && bpf_skb_change_type(skb, PACKET_HOST) < 0)
		return drop_packet(skb, f, who, DROP_WRITE_ERROR);
	trace_forward(skb, f, who, TRACE_TO_STACK);
	return TC_ACT_OK;
}

/*
 * Delivers a decapsulated packet (Ethernet + IPv4 at skb->data) that another node sent with the
 * given VNI from outer_saddr (host byte order): the destination endpoint's ingress policy, then
 * straight into its netns. The VNI is the sender's identity: authoritative even before our
 * ipcache knows the peer.
 */
static __always_inline int deliver_from_overlay(struct __sk_buff *skb, __u32 src_identity,
						__u32 outer_saddr)
{
	struct event_subject who = { .direction = DIR_INGRESS, .src_identity = src_identity };
	const struct endpoint_info *dst;
	struct flow f = {};
	struct peer src;
	struct ct_entry *ct;
	enum ct_state state;
	struct ethhdr *eth;
	__u32 now;
	int reason;

	reason = parse_frame(skb, &f, 0);
	if (reason)
		return drop_packet(skb, &f, &who, -reason);
	if (src_identity == IDENTITY_HOST || src_identity == IDENTITY_REMOTE_NODE) {
		src_identity = node_identity(&f, outer_saddr, src_identity);
		who.src_identity = src_identity;
	}

	dst = lookup_endpoint(f.daddr);
	if (!dst)
		return to_this_host(skb, &f, &who);
	who.ep_id = dst->ep_id;
	who.dst_identity = dst->sec_identity;

	state = ct_lookup(&f, &ct, &now);
	if (state != CT_REPLY) {
		/*
		 * The sender's Docker network (from the ipcache) only matters to an endpoint no
		 * ingress rule selects (Docker's isolation); an enforcing endpoint's policy keys on
		 * the VNI's identity alone, so it skips the ipcache's LPM lookup per packet.
		 */
		src.net_id = 0;
		if (!(dst->flags & EP_F_ENFORCE_INGRESS))
			resolve_peer(f.saddr, &src);
		reason = enforce_policy(skb, &f, dst, POLICY_INGRESS, src_identity, src.net_id, &who,
					state);
		if (reason)
			return drop_packet(skb, &f, &who, reason);
	}
	reason = ct_account(&f, skb->len, ct, state, src_identity, now);
	if (reason)
		return drop_packet(skb, &f, &who, reason);

	eth = eth_header(skb, sizeof(struct ethhdr));
	if (!eth)
		return drop_packet(skb, &f, &who, DROP_INVALID);
	if (!mac_is_zero(dst->mac))
		__builtin_memcpy(eth->h_dest, dst->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, dst->node_mac, ETH_ALEN);
	trace_forward(skb, &f, &who, TRACE_TO_ENDPOINT); /* counts it as forwarded, ingress */
	/* Straight into the container's netns: to_container does not run again. */
	return bpf_redirect_peer(dst->ifindex, 0);
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	struct event_subject who = { .direction = DIR_INGRESS };
	struct bpf_tunnel_key key = {};
	struct flow f = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return drop_packet(skb, &f, &who, DROP_NO_TUNNEL_KEY);
	return deliver_from_overlay(skb, key.tunnel_id, key.remote_ipv4);
}

/*
 * tc ingress of the underlay device (cfg_underlay_ifindex): VXLAN packets from a peer node for
 * this node's underlay address and overlay port whose inner packet is for a local endpoint are
 * decapsulated here and delivered like from_overlay does, without the UDP socket lookup, tunnel
 * metadata and second receive pass of the tunnel device. Everything else (other traffic,
 * fragments, IP options, senders that are no peer, the host's own overlay traffic) goes on
 * unchanged: the host's firewall and the tunnel device still take it.
 */
SEC("tc")
int from_underlay(struct __sk_buff *skb)
{
	const struct ipcache_entry *peer;
	struct vxlan_encap *h;
	struct ethhdr *eth;
	__u32 vni;
	__be32 saddr;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	eth = eth_header(skb, sizeof(struct ethhdr) + VXLAN_ENCAP_LEN + sizeof(struct iphdr));
	if (!eth)
		return TC_ACT_OK;
	h = (void *)(eth + 1);
	if (eth->h_proto != bpf_htons(ETH_P_IP) || h->ip.ihl != 5 || h->ip.protocol != IPPROTO_UDP ||
	    (h->ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)) ||
	    h->ip.daddr != bpf_htonl(cfg_underlay_saddr) || h->udp.dest != bpf_htons(cfg_tunnel_port) ||
	    h->vx_flags != bpf_htonl(VXLAN_FLAG_VNI) || h->inner.h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	/* Only for a local endpoint: the host's own traffic keeps the tunnel device's checks. */
	if (!lookup_endpoint(((struct iphdr *)((void *)h + VXLAN_ENCAP_LEN))->daddr))
		return TC_ACT_OK;
	/*
	 * Only from a peer node (its own address is a remote-node entry tunnelled to itself): this
	 * runs before the host's firewall, which still sees whatever anybody else sends to the port.
	 */
	saddr = h->ip.saddr;
	peer = lookup_ipcache(saddr);
	if (!peer || peer->sec_identity != IDENTITY_REMOTE_NODE || peer->tunnel_endpoint != saddr)
		return TC_ACT_OK;
	vni = bpf_ntohl(h->vx_vni) >> 8;
	if (bpf_skb_adjust_room(skb, -(__s32)VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
		return TC_ACT_OK;
	return deliver_from_overlay(skb, vni, bpf_ntohl(saddr));
}
