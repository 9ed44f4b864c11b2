/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The binary contract between drops.bpf.c and gadgets/drops/node.py.
 *
 * Fixed-width types only and explicit padding, so clang -target bpf and the
 * host's ctypes agree on every offset. node.py holds the ctypes twins and the
 * agent refuses to run when the sizes it resolves from the object's BTF differ
 * from its own (see gadgets/drops/node.py: check_layout).
 */
#ifndef KUBECTL_BPF_DROPS_H
#define KUBECTL_BPF_DROPS_H

#define DROPS_IFNAMSIZ 16

/* Bits of drop_event.match: which filter let the drop through. */
#define DROPS_MATCH_NETNS 1
#define DROPS_MATCH_SRC_IP 2
#define DROPS_MATCH_DST_IP 4

/* Bits of drop_event.flags. */
#define DROPS_FLAG_REASON_DERIVED 1	/* reason comes from locations[], not the kernel */

/* Most freeing functions the agent derives a reason from (reasons.LOCATION_REASONS). */
#define DROPS_MAX_LOCATIONS 16

/*
 * A kernel function whose kfree_skb calls all mean one reason, for kernels
 * whose kfree_skb carries none (before 5.17). Addresses from /proc/kallsyms.
 */
struct drops_location {
	__u64 start;		/* first byte of the function */
	__u64 end;		/* the next symbol's address */
	__u32 reason;		/* derived code (reasons.derived_table) */
	__u32 pad;
};

/* Read-only configuration, set by the agent between open and load. */
struct drops_config {
	__u8 filter_netns;	/* 1: a drop must match netns_filter or an IP */
	__u8 filter_ip;		/* 1: ip_filter holds target addresses */
	__u8 filter_reason;	/* 1: only reasons in reason_filter count */
	__u8 aggregate_only;	/* 1: count in maps, emit no events */
	__u32 wakeup_bytes;	/* wake the reader only past this backlog */
	__u64 rate_per_cpu;	/* events/s per CPU; 0 = unlimited */
	__u8 kernel_reasons;	/* 1: the hook passes a reason (its BTF has the argument) */
	__u8 location_count;	/* entries of locations[] in use */
	__u8 filter_node;	/* 1: a drop must be in node_netns (nodes share the kernel) */
	__u8 pad[5];
	struct drops_location locations[DROPS_MAX_LOCATIONS];
};

/* An address in IPv6 form; IPv4 is stored v4-mapped (::ffff:a.b.c.d). */
struct drops_addr {
	__u8 bytes[16];
};

struct drop_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 location;		/* kernel text address that freed the skb */
	__u32 reason;		/* enum skb_drop_reason, subsystem in bits 16-31 */
	__u32 netns;		/* inode of the netns of skb->dev (or skb->sk) */
	__u32 ifindex;
	__u32 iif;		/* skb->skb_iif: non-zero once received */
	__u32 len;		/* skb->len */
	__u16 ethertype;	/* host order */
	__u8 ip_proto;		/* L4 protocol number; 0 if not IP */
	__u8 match;		/* DROPS_MATCH_* bits */
	struct drops_addr saddr;
	struct drops_addr daddr;
	__u16 sport;		/* host order; ICMP: type */
	__u16 dport;		/* host order; ICMP: code */
	__u8 has_ports;		/* 1 for TCP/UDP/SCTP, 2 for ICMP type/code */
	__u8 family;		/* 4, 6 or 0 */
	__u8 flags;		/* DROPS_FLAG_* bits */
	__u8 pad;
	char ifname[DROPS_IFNAMSIZ];
};

/* Key of flow_counts: what --aggregate and the summary group by. */
struct drop_flow {
	struct drops_addr saddr;
	struct drops_addr daddr;
	__u16 dport;
	__u8 ip_proto;
	__u8 family;
	__u32 reason;
};

/* One slot of the per-CPU counters array; their sum is exact after detach. */
struct drops_counters {
	__u64 seen;		/* matching drops */
	__u64 emitted;		/* events committed to the ring buffer */
	__u64 lost;		/* events the ring buffer could not take */
	__u64 suppressed;	/* rate limited, or --aggregate */
	__u64 flow_overflow;	/* drops not counted in flow_counts (table full) */
};

_Static_assert(sizeof(struct drop_event) == 96, "drop_event layout");
_Static_assert(sizeof(struct drop_flow) == 40, "drop_flow layout");
_Static_assert(sizeof(struct drops_location) == 24, "drops_location layout");
_Static_assert(sizeof(struct drops_config) == 408, "drops_config layout"); /* 24 + 24 * 16 */
_Static_assert(sizeof(struct drops_counters) == 40, "drops_counters layout");

#endif /* KUBECTL_BPF_DROPS_H */
