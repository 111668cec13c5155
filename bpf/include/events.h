/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Counters (cilium_metrics) and notifications (cilium_events) for forwarded and dropped packets. */
#ifndef CILIUM_DOCKER_EVENTS_H
#define CILIUM_DOCKER_EVENTS_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "config.h"
#include "maps.h"
#include "packet.h"

/* The cilium_metrics index of a counter: struct metrics_key's bytes as a little-endian __u32. */
static __always_inline __u32 metrics_index(__u8 reason, __u8 direction)
{
	return (__u32)reason | ((__u32)(direction & 3) << 8);
}

/* Adds one packet of len bytes to the (reason, direction) counter. */
static __always_inline void metrics_count(__u8 reason, __u8 direction, __u32 len)
{
	__u32 index = metrics_index(reason, direction);
	struct metrics_value *value = bpf_map_lookup_elem(&cilium_metrics, &index);

	if (value) { /* always: the index is in range */
		value->packets += 1;
		value->bytes += len;
	}
}

/* Who and what an event is about. */
struct event_subject {
	__u16 ep_id;
	__u8 direction;
	__u32 src_identity;
	__u32 dst_identity;
};

/* Reserves an event and fills the fields every type shares; NULL when the ring is full. */
static __always_inline struct event *event_start(struct __sk_buff *skb, const struct flow *f,
						 const struct event_subject *who, __u8 type,
						 __u8 subtype)
{
	struct event *e = bpf_ringbuf_reserve(&cilium_events, sizeof(*e), 0);
	__u32 cap;

	if (!e) {
		metrics_count(REASON_EVENTS_LOST, who->direction, 0);
		return NULL;
	}
	e->type = type;
	e->subtype = subtype;
	e->ep_id = who->ep_id;
	e->ifindex = skb->ifindex;
	e->timestamp = bpf_ktime_get_ns();
	e->src_identity = who->src_identity;
	e->dst_identity = who->dst_identity;
	e->saddr = f->saddr;
	e->daddr = f->daddr;
	e->sport = f->sport;
	e->dport = f->dport;
	e->protocol = f->protocol;
	e->direction = who->direction;
	e->verdict = 0;
	e->pad1 = 0;
	e->cookie = 0;
	e->len_orig = skb->len;
	e->pad2 = 0;
	e->pad3 = 0;
	cap = skb->len < EVENT_PAYLOAD_LEN ? skb->len : EVENT_PAYLOAD_LEN;
	if (cap == 0 || bpf_skb_load_bytes(skb, 0, e->payload, cap) < 0)
		cap = 0;
	e->len_cap = cap;
	return e;
}

/* Counts a drop, reports it and returns TC_ACT_SHOT. */
static __always_inline int drop_packet(struct __sk_buff *skb, const struct flow *f,
				       const struct event_subject *who, __u8 reason)
{
	metrics_count(reason, who->direction, skb->len);
	if (cfg_drop_notify) {
		struct event *e = event_start(skb, f, who, EVENT_DROP, reason);

		if (e)
			bpf_ringbuf_submit(e, 0);
	}
	return TC_ACT_SHOT;
}

/* Reports a policy decision on the first packet of a connection. */
static __always_inline void notify_policy_verdict(struct __sk_buff *skb, const struct flow *f,
						  const struct event_subject *who, __u8 match,
						  __u8 verdict, __u32 cookie)
{
	struct event *e;

	if (!cfg_policy_verdict_notify)
		return;
	e = event_start(skb, f, who, EVENT_POLICY_VERDICT, match);
	if (!e)
		return;
	e->verdict = verdict;
	e->cookie = cookie;
	bpf_ringbuf_submit(e, 0);
}

/* Counts a forwarded packet and, when tracing is on, reports where it went. */
static __always_inline void trace_forward(struct __sk_buff *skb, const struct flow *f,
					  const struct event_subject *who, __u8 point)
{
	metrics_count(REASON_FORWARDED, who->direction, skb->len);
	if (cfg_trace_notify) {
		struct event *e = event_start(skb, f, who, EVENT_TRACE, point);

		if (e)
			bpf_ringbuf_submit(e, 0);
	}
}

#endif /* CILIUM_DOCKER_EVENTS_H */
