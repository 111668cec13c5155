/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Load-time configuration: `const volatile` globals live in .rodata, which the loader writes
 * before load; the verifier then sees them as constants and prunes the branches they disable.
 * The names are part of the ABI (src/datapath/bpf/abi.ts, loadTimeConstants).
 */
#ifndef CILIUM_DOCKER_CONFIG_H
#define CILIUM_DOCKER_CONFIG_H

#include <linux/types.h>

/* Conntrack lifetimes in seconds (Cilium's defaults). */
const volatile __u32 cfg_ct_lifetime_tcp = 21600; /* established TCP */
const volatile __u32 cfg_ct_lifetime_syn = 60;    /* TCP before the reply is seen */
const volatile __u32 cfg_ct_lifetime_close = 10;  /* TCP after FIN or RST */
const volatile __u32 cfg_ct_lifetime_nontcp = 60; /* UDP, ICMP, anything else */

/*
 * Packet and byte counters in each conntrack entry (`cilium bpf ct list`): 1 = on. They are the
 * only per-packet writes to an established flow's entry; off, the entry is only read (its flags
 * and expiry change rarely), so the CPUs that carry the two directions of a flow share its cache
 * line instead of taking it from each other on every packet (bench/ct-bounce.ts measures that).
 */
const volatile __u8 cfg_ct_accounting = 1;

/* Which events go to cilium_events: 1 = on. */
const volatile __u8 cfg_drop_notify = 1;           /* every dropped packet */
const volatile __u8 cfg_policy_verdict_notify = 1; /* first packet of each connection */
const volatile __u8 cfg_trace_notify = 0;          /* every forwarded packet */

/*
 * ifindex of the tunnel device (cilium_vxlan, external mode); 0 = no overlay. A constant, so the
 * encapsulation path does no per-packet lookup: the agent creates the device before loading.
 */
const volatile __u32 cfg_tunnel_ifindex = 0;

/*
 * Encapsulation in the program itself (default with a tunnel): ifindex of the underlay device
 * that holds this node's underlay address, and that address (host byte order). from_container
 * then writes the outer IPv4/UDP/VXLAN headers (bpf_skb_adjust_room) and hands the packet to the
 * underlay device's neighbour (bpf_redirect_neigh): no tunnel device, route lookup or IP output
 * path on the way out. 0 = through the tunnel device (bpf_skb_set_tunnel_key), which routes each
 * packet. Receiving always goes through the tunnel device (from_overlay).
 */
const volatile __u32 cfg_underlay_ifindex = 0;
const volatile __u32 cfg_underlay_saddr = 0;
/* Destination UDP port of the overlay (the tunnel device's). */
const volatile __u32 cfg_tunnel_port = 8472;

#endif /* CILIUM_DOCKER_CONFIG_H */
