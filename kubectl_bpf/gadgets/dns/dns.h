/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dns: the binary contract between dns.bpf.c and node.py. The program passes
 * whole packets (truncated) to a packet socket, so the only shared layouts are
 * the read-only configuration and the per-CPU counters.
 */
#ifndef KUBECTL_BPF_DNS_H
#define KUBECTL_BPF_DNS_H

/* Server ports the filter passes: 53 plus up to 7 given with --port. */
#define DNS_MAX_PORTS 8

struct dns_config {
	__u16 ports[DNS_MAX_PORTS]; /* host order; 0 = unused slot */
	__u32 snap_bytes;           /* L4 payload bytes kept after the L3+L4 headers */
	__u32 pad;
};

/* One slot of the per-CPU counters array. */
struct dns_counters {
	__u64 packets;  /* passed to user space (including ones the socket then dropped) */
	__u64 snapped;  /* of those, cut at snap_bytes */
	__u64 ignored;  /* IP packets that were not DNS: the filter's work, for the bench */
};

_Static_assert(sizeof(struct dns_config) == 24, "dns_config layout");
_Static_assert(sizeof(struct dns_counters) == 24, "dns_counters layout");

#endif
