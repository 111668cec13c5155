/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy decisions over cilium_policy (an LPM trie, see struct policy_key).
 *
 * Two longest-prefix lookups, as in Cilium v1.16+: one with the peer's identity, one with the
 * wildcard identity 0. Each returns the most specific entry for that peer: port before port block
 * before protocol-only before any-protocol. Then, following Cilium's precedence: a deny from
 * either lookup wins; otherwise the peer's own entry beats the wildcard one. A miss in both is a
 * drop (default deny). Fragments carry no ports, so they are matched on L3 only, as in Cilium.
 *
 * The match type reported in policy-verdict events follows from which lookup hit and the entry's
 * l4_prefixlen (0 any protocol, 8 protocol only, more: port).
 *
 * A direction whose enforcement is off (no rule selects the endpoint) has Docker's isolation
 * instead: ingress from a container of another Docker network is dropped, everything else passes.
 */
#ifndef CILIUM_DOCKER_POLICY_H
#define CILIUM_DOCKER_POLICY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "maps.h"
#include "packet.h"

/* The outcome of a policy check. */
struct policy_verdict {
	int drop_reason; /* 0 = allowed, else DROP_* */
	__u8 match;      /* POLICY_MATCH_* */
	__u32 cookie;
};

static __always_inline struct policy_entry *policy_match(__u16 ep_id, __u8 direction, __u32 peer,
							 const struct flow *f)
{
	struct policy_key key = {
		.prefixlen = f->fragment ? POLICY_PREFIX_FIXED : POLICY_PREFIX_FULL,
		.ep_id = ep_id,
		.direction = direction,
		.sec_identity = peer,
		.protocol = f->protocol,
		.dport = policy_port(f),
	};

	return bpf_map_lookup_elem(&cilium_policy, &key);
}

static __always_inline __u8 policy_match_type(int peer_specific, __u8 l4_prefixlen)
{
	if (l4_prefixlen == 0)
		return peer_specific ? POLICY_MATCH_L3_ONLY : POLICY_MATCH_ALL;
	if (l4_prefixlen <= 8)
		return peer_specific ? POLICY_MATCH_L3_PROTO : POLICY_MATCH_PROTO_ONLY;
	return peer_specific ? POLICY_MATCH_L3_L4 : POLICY_MATCH_L4_ONLY;
}

/* Looks up what ep_id's policy says about peer in direction (POLICY_INGRESS/EGRESS). */
static __always_inline void policy_lookup(__u16 ep_id, __u8 direction, __u32 peer,
					  const struct flow *f, struct policy_verdict *v)
{
	struct policy_entry *exact = policy_match(ep_id, direction, peer, f);
	struct policy_entry *any = policy_match(ep_id, direction, IDENTITY_UNKNOWN, f);
	struct policy_entry *hit;
	int peer_specific;

	if (exact && (exact->deny || !any || !any->deny)) {
		hit = exact;
		peer_specific = 1;
	} else if (any) {
		hit = any;
		peer_specific = 0;
	} else {
		v->drop_reason = DROP_POLICY;
		v->match = POLICY_MATCH_NONE;
		v->cookie = 0;
		return;
	}
	v->drop_reason = hit->deny ? DROP_POLICY_DENY : 0;
	v->match = policy_match_type(peer_specific, hit->l4_prefixlen);
	v->cookie = hit->cookie;
}

/*
 * Decides whether ep may talk to (egress) or hear from (ingress) a peer with the given identity
 * and Docker network (0 = not a container). *enforced tells whether the policy map was consulted.
 */
static __always_inline void policy_check(const struct endpoint_info *ep, __u8 direction,
					 __u32 peer_identity, __u32 peer_net_id,
					 const struct flow *f, struct policy_verdict *v,
					 int *enforced)
{
	__u16 flag = direction == POLICY_INGRESS ? EP_F_ENFORCE_INGRESS : EP_F_ENFORCE_EGRESS;

	*enforced = (ep->flags & flag) != 0;
	if (*enforced) {
		policy_lookup(ep->ep_id, direction, peer_identity, f, v);
		return;
	}
	v->match = POLICY_MATCH_NONE;
	v->cookie = 0;
	v->drop_reason = 0;
	if (direction == POLICY_INGRESS && peer_net_id && peer_net_id != ep->net_id)
		v->drop_reason = DROP_NET_ISOLATION;
}

#endif /* CILIUM_DOCKER_POLICY_H */
