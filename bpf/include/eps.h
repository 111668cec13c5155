/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Who is behind an IPv4 address: a local endpoint (cilium_endpoints) or the ipcache. */
#ifndef CILIUM_DOCKER_EPS_H
#define CILIUM_DOCKER_EPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "maps.h"

/* Prefix length of a full IPv4 address in an ipcache key (see struct ipcache_key). */
#define IPCACHE_PREFIX_LEN_IPV4 (32 + 32)

/* What policy needs to know about the other side of a packet. */
struct peer {
	const struct endpoint_info *local; /* set when the address is a local endpoint */
	__u32 identity;
	__u32 net_id;
	__be32 tunnel_endpoint;
	__be32 tunnel_nexthop; /* see struct ipcache_entry */
};

static __always_inline const struct endpoint_info *lookup_endpoint(__be32 addr)
{
	struct endpoint_key key = { .addr = { addr }, .family = ADDR_FAMILY_IPV4 };

	return bpf_map_lookup_elem(&cilium_endpoints, &key);
}

/* The longest ipcache prefix holding addr, or NULL. */
static __always_inline const struct ipcache_entry *lookup_ipcache(__be32 addr)
{
	struct ipcache_key key = {
		.prefixlen = IPCACHE_PREFIX_LEN_IPV4,
		.family = ADDR_FAMILY_IPV4,
		.addr = { addr },
	};

	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

/* Resolves addr: local endpoint first, then the longest ipcache prefix, else the world. */
static __always_inline void resolve_peer(__be32 addr, struct peer *p)
{
	const struct ipcache_entry *entry;

	p->local = lookup_endpoint(addr);
	if (p->local) {
		p->identity = p->local->sec_identity;
		p->net_id = p->local->net_id;
		p->tunnel_endpoint = 0;
		p->tunnel_nexthop = 0;
		return;
	}
	entry = lookup_ipcache(addr);
	if (entry) {
		p->identity = entry->sec_identity;
		p->net_id = entry->net_id;
		p->tunnel_endpoint = entry->tunnel_endpoint;
		p->tunnel_nexthop = entry->tunnel_nexthop;
		return;
	}
	p->identity = IDENTITY_WORLD;
	p->net_id = 0;
	p->tunnel_endpoint = 0;
	p->tunnel_nexthop = 0;
}

#endif /* CILIUM_DOCKER_EPS_H */
