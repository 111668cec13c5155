/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking over cilium_ct. One entry per connection, keyed by its original direction;
 * a packet matches it either as is (forward) or reversed (reply). Replies skip policy, which is
 * what makes policy stateful; forward packets are checked on every packet so that a policy
 * change also cuts established connections (Cilium v1.4 semantics).
 */
#ifndef CILIUM_DOCKER_CONNTRACK_H
#define CILIUM_DOCKER_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "config.h"
#include "maps.h"
#include "packet.h"

enum ct_state {
	CT_NEW,         /* no live entry either way */
	CT_ESTABLISHED, /* matches an entry in its original direction */
	CT_REPLY,       /* matches an entry reversed */
};

/*
 * CLOCK_MONOTONIC seconds, from the coarse clock: it lags the precise one by at most a tick,
 * nothing at a resolution of seconds, and skips the clocksource read (kvm-clock here), which was
 * the largest single cost of a run (bench programs: -20 % per run with hot caches, -7 to -20 %
 * cold). The agent reads CLOCK_MONOTONIC for the time an entry has left (src/main.ts, ct list).
 */
static __always_inline __u32 ct_now(void)
{
	return bpf_ktime_get_coarse_ns() / 1000000000ULL;
}

static __always_inline void ct_forward_key(const struct flow *f, struct ct_key *key)
{
	key->saddr = f->saddr;
	key->daddr = f->daddr;
	key->sport = f->sport;
	key->dport = f->dport;
	key->protocol = f->protocol;
	key->pad[0] = key->pad[1] = key->pad[2] = 0;
}

static __always_inline void ct_reverse_key(const struct flow *f, struct ct_key *key)
{
	key->saddr = f->daddr;
	key->daddr = f->saddr;
	key->sport = f->dport;
	key->dport = f->sport;
	key->protocol = f->protocol;
	key->pad[0] = key->pad[1] = key->pad[2] = 0;
}

/* How long an entry lives after this packet. */
static __always_inline __u32 ct_lifetime(const struct flow *f, const struct ct_entry *e)
{
	if (f->protocol != IPPROTO_TCP)
		return cfg_ct_lifetime_nontcp;
	if (e->flags & CT_F_CLOSING)
		return cfg_ct_lifetime_close;
	if (e->flags & CT_F_REPLY_SEEN)
		return cfg_ct_lifetime_tcp;
	return cfg_ct_lifetime_syn;
}

/*
 * Looks the packet up; *entry is set for CT_ESTABLISHED and CT_REPLY. *now is the clock read
 * once per packet (ct_update/ct_create take it back).
 */
static __always_inline enum ct_state ct_lookup(const struct flow *f, struct ct_entry **entry,
					       __u32 *now_out)
{
	__u32 now = ct_now();
	struct ct_key key;

	*now_out = now;
	struct ct_entry *e;

	ct_forward_key(f, &key);
	e = bpf_map_lookup_elem(&cilium_ct, &key);
	if (e && e->expires > now) {
		*entry = e;
		return CT_ESTABLISHED;
	}
	ct_reverse_key(f, &key);
	e = bpf_map_lookup_elem(&cilium_ct, &key);
	if (e && e->expires > now) {
		*entry = e;
		return CT_REPLY;
	}
	*entry = NULL;
	return CT_NEW;
}

/*
 * Accounts a packet to a live entry and extends its lifetime. Flags and the expiry (seconds) are
 * written only when they change: both directions of a flow update the same entry, usually from
 * two CPUs, and a store to an unchanged field still bounces its cache line between them.
 */
static __always_inline void ct_update(struct ct_entry *e, const struct flow *f, __u32 len,
				      enum ct_state state, __u32 now)
{
	__u8 flags = e->flags;
	__u32 expires;

	if (f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		flags |= CT_F_CLOSING;
	if (state == CT_REPLY) {
		/* Replies of a connection policy now drops do not keep its entry alive. */
		if (flags & CT_F_DENIED)
			return;
		flags |= CT_F_REPLY_SEEN;
		if ((e->tcp_flags_rev | f->tcp_flags) != e->tcp_flags_rev)
			e->tcp_flags_rev |= f->tcp_flags;
		if (cfg_ct_accounting) {
			__sync_fetch_and_add(&e->packets_rev, 1);
			__sync_fetch_and_add(&e->bytes_rev, len);
		}
	} else {
		flags &= ~CT_F_DENIED; /* policy allows the forward direction (again) */
		if ((e->tcp_flags_fwd | f->tcp_flags) != e->tcp_flags_fwd)
			e->tcp_flags_fwd |= f->tcp_flags;
		if (cfg_ct_accounting) {
			__sync_fetch_and_add(&e->packets_fwd, 1);
			__sync_fetch_and_add(&e->bytes_fwd, len);
		}
	}
	if (flags != e->flags)
		e->flags = flags;
	expires = now + ct_lifetime(f, e);
	if (e->expires != expires)
		e->expires = expires;
}

/* Creates the entry for a new connection. Returns 0 or -DROP_CT_CREATE_FAILED. */
static __always_inline int ct_create(const struct flow *f, __u32 len, __u32 src_identity,
				     __u32 now)
{
	struct ct_key key;
	struct ct_entry e = {
		.packets_fwd = 1,
		.bytes_fwd = len,
		.src_identity = src_identity,
		.tcp_flags_fwd = f->tcp_flags,
	};

	if (f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e.flags |= CT_F_CLOSING;
	e.created = now;
	e.expires = e.created + ct_lifetime(f, &e);
	ct_forward_key(f, &key);
	if (bpf_map_update_elem(&cilium_ct, &key, &e, BPF_ANY) < 0)
		return -DROP_CT_CREATE_FAILED;
	return 0;
}

/*
 * Marks a connection whose forward direction policy no longer allows. The entry is kept, not
 * deleted: ct_lookup tries the forward direction first, so the sender's next packets still match
 * it and are still policed (and dropped). Deleting it let a reply already in flight find no
 * entry, pass as a new connection the other way and create the entry reversed, after which the
 * sender's packets matched it as replies and skipped ingress policy for good. Its replies no
 * longer extend it (ct_update), so it expires with its last allowed packet's lifetime; an allowed
 * forward packet (the policy changed back) clears the mark.
 */
static __always_inline void ct_deny(const struct flow *f)
{
	struct ct_entry *e;
	struct ct_key key;

	ct_forward_key(f, &key);
	e = bpf_map_lookup_elem(&cilium_ct, &key);
	if (e && !(e->flags & CT_F_DENIED))
		e->flags |= CT_F_DENIED;
}

#endif /* CILIUM_DOCKER_CONNTRACK_H */
