/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The contract between the BPF programs and the agent: every map key and value, every event
 * record, and the numbers stored in them. src/datapath/bpf/abi.ts mirrors this file byte for byte;
 * test/unit/datapath/abi.test.ts compares the two through the BTF of the compiled object.
 *
 * Rules for changing it: fields are naturally aligned with explicit padding (no bitfields, no
 * implicit holes) so that the layout is the same for clang -target bpf and for a hand-written
 * encoder; pinned maps survive agent restarts, so a layout change needs a new map name.
 * Multi-byte fields are host byte order unless the type says __be16/__be32 (network order).
 */
#ifndef CILIUM_DOCKER_ABI_H
#define CILIUM_DOCKER_ABI_H

#include <linux/types.h>

/* Reserved security identities (Cilium's numbering, pkg/identity/numericidentity.go). */
#define IDENTITY_UNKNOWN 0 /* also the "any peer" wildcard in policy keys */
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2
#define IDENTITY_REMOTE_NODE 6 /* another node's host: the VNI of its own traffic into our containers */

/* Address families in endpoint and ipcache keys (Cilium's ENDPOINT_KEY_IPV4/IPV6). */
#define ADDR_FAMILY_IPV4 1
#define ADDR_FAMILY_IPV6 2

/* endpoint_info.flags */
#define EP_F_ENFORCE_INGRESS (1 << 0) /* a rule selects the endpoint for ingress: default deny */
#define EP_F_ENFORCE_EGRESS (1 << 1)  /* a rule selects the endpoint for egress: default deny */

/* policy_key.direction (Cilium's egress bit) */
#define POLICY_INGRESS 0
#define POLICY_EGRESS 1

/* Direction in metrics keys and events (Cilium's METRIC_INGRESS/METRIC_EGRESS). */
#define DIR_INGRESS 1 /* towards the container */
#define DIR_EGRESS 2  /* from the container */

/*
 * Drop reasons, stored positive in metrics keys and events (pkg/monitor/api/drop.go numbers
 * where Cilium has one). Forwarded packets are counted under reason 0.
 */
#define REASON_FORWARDED 0
#define DROP_INVALID_SMAC 130
#define DROP_INVALID_SIP 132
#define DROP_POLICY 133 /* no policy entry allows it (default deny) */
#define DROP_INVALID 134
#define DROP_UNSUPPORTED_L3 139
#define DROP_WRITE_ERROR 141
#define DROP_NO_LOCAL_ENDPOINT 152
#define DROP_NO_TUNNEL_KEY 160 /* from_overlay: a packet without tunnel metadata */
#define DROP_CT_CREATE_FAILED 155
#define DROP_POLICY_DENY 181 /* an explicit deny entry matched */
#define DROP_NET_ISOLATION 240 /* unenforced endpoint, peer container in another Docker network */
#define REASON_EVENTS_LOST 255 /* metrics only: the ring buffer was full */

/* Event types (pkg/monitor/api/types.go). */
#define EVENT_DROP 1
#define EVENT_TRACE 4
#define EVENT_POLICY_VERDICT 5

/* Trace observation points, event.subtype of EVENT_TRACE (Cilium's TraceTo... numbering). */
#define TRACE_TO_ENDPOINT 0
#define TRACE_TO_OVERLAY 2
#define TRACE_TO_STACK 3
#define TRACE_FROM_ENDPOINT 5

/* Policy match types, event.subtype of EVENT_POLICY_VERDICT (Cilium v1.19 numbering). */
#define POLICY_MATCH_NONE 0
#define POLICY_MATCH_L3_ONLY 1
#define POLICY_MATCH_L3_L4 2
#define POLICY_MATCH_L4_ONLY 3
#define POLICY_MATCH_ALL 4
#define POLICY_MATCH_L3_PROTO 5
#define POLICY_MATCH_PROTO_ONLY 6

/* event.verdict */
#define VERDICT_ALLOW 1
#define VERDICT_DENY 2

/* ct_entry.flags */
#define CT_F_REPLY_SEEN (1 << 0) /* a packet went in the reply direction */
#define CT_F_CLOSING (1 << 1)    /* FIN or RST seen: short lifetime */
#define CT_F_DENIED (1 << 2)     /* policy dropped the forward direction: replies do not extend it */

/*
 * skb->mark set on container traffic leaving towards the world (no container or host behind the
 * destination). One static iptables rule in the host's nat POSTROUTING masquerades exactly the
 * packets carrying it, whatever pools exist (see src/datapath/masquerade.ts).
 */
#define MARK_MASQUERADE 0x0c00
#define MARK_MASQUERADE_MASK 0x0f00

/* Bytes of packet copied into events (Cilium's TRACE_PAYLOAD_LEN). */
#define EVENT_PAYLOAD_LEN 128

/* An IP address as a map key: cilium_endpoints. IPv4 lives in addr[0]. */
struct endpoint_key {
	__be32 addr[4];
	__u8 family; /* ADDR_FAMILY_* */
	__u8 pad[3];
};

/* A local container endpoint: cilium_endpoints value, written by the agent. */
struct endpoint_info {
	__u32 ifindex;      /* host-side veth (lxc*) */
	__u16 ep_id;        /* endpoint id: policy keys and events name it */
	__u16 flags;        /* EP_F_* */
	__u32 sec_identity; /* the endpoint's own security identity */
	__u32 net_id;       /* Docker network number: isolation when a direction is unenforced */
	__u8 mac[6];        /* container-side MAC (eth0 inside); all zero = not checked */
	__u8 node_mac[6];   /* host-side MAC (lxc*): ARP answers, source MAC on delivery */
};

/*
 * cilium_policy key: an LPM trie holding the policy of every endpoint (Cilium v1.16+'s layout,
 * with the endpoint id in front). The prefix always covers ep_id, direction, pad1, sec_identity and
 * pad2 (POLICY_PREFIX_FIXED bits); then protocol (8 bits; left out = any protocol); then the
 * leading bits of dport (left out = any port, 16 = one port, in between = an aligned port block).
 * sec_identity 0 = any peer. Bits beyond the prefix are zero. For protocol ICMP (1) dport holds
 * the ICMP message type (an `icmps` rule), as in Cilium's policy map.
 */
struct policy_key {
	__u32 prefixlen;
	__u16 ep_id;    /* endpoint the entry belongs to */
	__u8 direction; /* POLICY_INGRESS / POLICY_EGRESS */
	__u8 pad1;
	__u32 sec_identity; /* peer identity */
	__u8 pad2;
	__u8 protocol; /* IPPROTO_* */
	__be16 dport;
};

#define POLICY_PREFIX_FIXED 72                         /* ep_id .. pad2 */
#define POLICY_PREFIX_PROTO (POLICY_PREFIX_FIXED + 8)  /* + protocol */
#define POLICY_PREFIX_FULL (POLICY_PREFIX_PROTO + 16)  /* + dport */

/* cilium_policy value. */
struct policy_entry {
	__u8 deny;         /* 1: deny (wins over any allow), 0: allow */
	__u8 l4_prefixlen; /* prefixlen - POLICY_PREFIX_FIXED: which match type the entry is */
	__u16 pad;
	__u32 cookie; /* rule cookie, echoed in policy-verdict events */
};

/*
 * cilium_ipcache key (LPM trie, Cilium's layout): prefixlen counts the 32 bits of
 * pad1/pad2/family plus the address prefix, so an IPv4 /24 has prefixlen 56.
 */
struct ipcache_key {
	__u32 prefixlen;
	__u16 pad1;
	__u8 pad2;
	__u8 family; /* ADDR_FAMILY_* */
	__be32 addr[4];
};

/* cilium_ipcache value: what is known about a remote address. */
struct ipcache_entry {
	__u32 sec_identity;
	__be32 tunnel_endpoint; /* underlay IPv4 of the node that hosts it; 0 = none */
	__u32 net_id;           /* Docker network of a container peer; 0 = not a container */
	/*
	 * With encapsulation in BPF (cfg_underlay_ifindex): the underlay next hop towards
	 * tunnel_endpoint. 0 = tunnel_endpoint itself (on the underlay device's link); a gateway on
	 * that link; TUNNEL_NEXTHOP_DEVICE = not via the underlay device: the tunnel device routes it.
	 */
	__be32 tunnel_nexthop;
};
#define TUNNEL_NEXTHOP_DEVICE 0xffffffff

/* cilium_ct key: a connection in its original direction. ICMP echo: id in sport (request). */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 pad[3];
};

/* cilium_ct value. Times are CLOCK_MONOTONIC seconds (bpf_ktime_get_ns() / 1e9). */
struct ct_entry {
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u32 created;
	__u32 expires;      /* the entry is dead from this second on */
	__u32 src_identity; /* identity of the side that opened the connection */
	__u8 tcp_flags_fwd; /* union of TCP flags seen in each direction */
	__u8 tcp_flags_rev;
	__u16 flags; /* CT_F_* */
};

/*
 * A cilium_metrics counter's coordinates. The map is a per-CPU array: its index is these 4 bytes
 * read as a little-endian __u32, reason | direction << 8 (events.h, metrics_index), so user space
 * reads an index back as this struct.
 */
struct metrics_key {
	__u8 reason;    /* REASON_FORWARDED or DROP_* */
	__u8 direction; /* DIR_* */
	__u16 pad;
};

/* Entries of cilium_metrics: every reason (8 bits) of directions 0-3. */
#define METRICS_ENTRIES 1024


/* cilium_metrics value, one per CPU. */
struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* One cilium_events ring-buffer record. */
struct event {
	__u8 type;    /* EVENT_* */
	__u8 subtype; /* drop: DROP_*; trace: TRACE_*; policy verdict: POLICY_MATCH_* */
	__u16 ep_id;  /* endpoint whose program or policy produced it */
	__u32 ifindex;
	__u64 timestamp; /* bpf_ktime_get_ns() */
	__u32 src_identity;
	__u32 dst_identity;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 direction; /* DIR_* */
	__u8 verdict;   /* policy verdict: VERDICT_* */
	__u8 pad1;
	__u32 cookie;   /* policy verdict: rule cookie of the matching entry */
	__u32 len_orig; /* packet length */
	__u16 len_cap;  /* bytes of payload that are valid */
	__u16 pad2;
	__u8 payload[EVENT_PAYLOAD_LEN];
	__u32 pad3;
};

#endif /* CILIUM_DOCKER_ABI_H */
