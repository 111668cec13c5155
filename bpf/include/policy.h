/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy decisions over cilium_policy.
 *
 * Lookup order follows Cilium v1.19's precedence: an explicit deny at any level wins; among
 * allows, the longer L4 match wins, then the L3 match. That gives six keys, most specific first:
 *   {peer, port, proto} L3-L4, {0, port, proto} L4-only, {peer, 0, proto} L3-proto,
 *   {0, 0, proto} proto-only, {peer, 0, 0} L3-only, {0, 0, 0} all.
 * (v1.4 looked up only L3-L4, L3-only and L4-only, in that order.) The first allow found gives the
 * match type and cookie that policy-verdict events report.
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

/* Tries one key; returns 1 when the search is over (a deny matched). */
static __always_inline int policy_try(struct policy_key *key, __u32 peer, __be16 dport, __u8 proto,
				      __u8 match, struct policy_verdict *v)
{
	struct policy_entry *entry;

	key->sec_identity = peer;
	key->dport = dport;
	key->protocol = proto;
	entry = bpf_map_lookup_elem(&cilium_policy, key);
	if (!entry)
		return 0;
	if (entry->deny) {
		v->drop_reason = DROP_POLICY_DENY;
		v->match = match;
		v->cookie = entry->cookie;
		return 1;
	}
	if (v->match == POLICY_MATCH_NONE) {
		v->drop_reason = 0;
		v->match = match;
		v->cookie = entry->cookie;
	}
	return 0;
}

/* Looks up what ep_id's policy says about peer in direction (POLICY_INGRESS/EGRESS). */
static __always_inline void policy_lookup(__u16 ep_id, __u8 direction, __u32 peer,
					  const struct flow *f, struct policy_verdict *v)
{
	struct policy_key key = { .ep_id = ep_id, .direction = direction };
	__be16 dport = f->fragment ? 0 : policy_port(f);
	__u8 proto = f->fragment ? 0 : f->protocol;

	v->drop_reason = DROP_POLICY;
	v->match = POLICY_MATCH_NONE;
	v->cookie = 0;
	if (dport) {
		if (policy_try(&key, peer, dport, proto, POLICY_MATCH_L3_L4, v))
			return;
		if (policy_try(&key, 0, dport, proto, POLICY_MATCH_L4_ONLY, v))
			return;
	}
	if (proto) {
		if (policy_try(&key, peer, 0, proto, POLICY_MATCH_L3_PROTO, v))
			return;
		if (policy_try(&key, 0, 0, proto, POLICY_MATCH_PROTO_ONLY, v))
			return;
	}
	if (policy_try(&key, peer, 0, 0, POLICY_MATCH_L3_ONLY, v))
		return;
	policy_try(&key, 0, 0, 0, POLICY_MATCH_ALL, v);
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
