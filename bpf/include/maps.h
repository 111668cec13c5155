/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The pinned maps every program shares. LIBBPF_PIN_BY_NAME: libbpf pins each map at
 * <pin_root_path>/<name> on first load and reuses the pinned map on later loads, so an agent
 * restart (or a second object, should one be added) sees the same state. The overlay programs
 * share the lxc object (lxc.bpf.c says why). The sizes here are defaults; the loader may change
 * max_entries before load.
 */
#ifndef CILIUM_DOCKER_MAPS_H
#define CILIUM_DOCKER_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* Local endpoints by IP: delivery target, source validation and per-endpoint config. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_endpoints SEC(".maps");

/*
 * Policy of every endpoint in one LPM trie keyed by (endpoint id, direction, peer, protocol, port
 * prefix). One map instead of cilium_policy_<epid>: the programs are loaded once and shared by all
 * endpoints, so per-endpoint maps would need a map-in-map indirection on every lookup; one map
 * also lets a regeneration that touches many endpoints go to the kernel in a single batch. An LPM
 * trie (not a hash) because the policy compiler emits port ranges as aligned prefixes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_policy SEC(".maps");

/* Remote (and host) addresses and prefixes -> identity, tunnel endpoint, Docker network. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_entry);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache SEC(".maps");

/* Connection tracking; LRU so that a full table evicts the oldest flows instead of failing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 131072);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ct SEC(".maps");

/*
 * Forward and drop counters by reason and direction; per-CPU so updates need no atomics. An array
 * indexed by metrics_index() (the bytes of struct metrics_key read as a little-endian __u32): the
 * verifier inlines the lookup, no hashing and no bucket to walk on every packet.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_value);
	__uint(max_entries, METRICS_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_metrics SEC(".maps");

/* Drop, policy-verdict and trace records for the agent (struct event). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events SEC(".maps");

#endif /* CILIUM_DOCKER_MAPS_H */
