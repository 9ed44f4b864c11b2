/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The binary contract between tcp.bpf.c and gadgets/tcp/node.py.
 *
 * Fixed-width types and explicit padding, so clang -target bpf and the host's
 * ctypes/struct agree on every offset; node.py refuses to run when the sizes
 * in the object's BTF differ from its own (node.py: check_layout).
 */
#ifndef KUBECTL_BPF_TCP_H
#define KUBECTL_BPF_TCP_H

/* tcp_event.kind: one line per notable event, never one per packet. */
#define TCP_EV_CONNECTED 1	/* SYN_SENT -> ESTABLISHED */
#define TCP_EV_REFUSED 2	/* SYN_SENT -> CLOSE with ECONNREFUSED: RST in answer to the SYN */
#define TCP_EV_TIMEOUT 3	/* SYN_SENT -> CLOSE after SYN retransmits (ETIMEDOUT, or the caller gave up) */
#define TCP_EV_UNREACHABLE 4	/* SYN_SENT -> CLOSE with EHOSTUNREACH/ENETUNREACH (ICMP) */
#define TCP_EV_ABORTED 5	/* SYN_SENT -> CLOSE, no error, no SYN retransmitted: the caller closed */
#define TCP_EV_FAILED 6		/* SYN_SENT -> CLOSE with another errno */
#define TCP_EV_ACCEPTED 7	/* SYN_RECV -> ESTABLISHED: an inbound connection */
#define TCP_EV_RESET_SENT 8	/* tcp:tcp_send_reset */
#define TCP_EV_RESET_RECEIVED 9	/* tcp:tcp_receive_reset on a connection past SYN_SENT */
#define TCP_EV_RETRANSMIT 10	/* first retransmit of a burst; later ones fold into the next line
				 * (or into one at close): every retransmit is in exactly one line */
#define TCP_EV_ERROR 11		/* sock:inet_sk_error_report on a connection past SYN_SENT */

/* tcp_event.direction, relative to the target. */
#define TCP_DIR_UNKNOWN 0
#define TCP_DIR_OUT 1		/* the target connected */
#define TCP_DIR_IN 2		/* the target accepted (or refused) */

/* tcp_event.reason_kind: what reason holds. */
#define TCP_REASON_NONE 0
#define TCP_REASON_ERRNO 1	/* sk->sk_err */
#define TCP_REASON_RST 2	/* enum sk_rst_reason (BTF) */

/* Read-only configuration, set by the agent between open and load. */
struct tcp_config {
	__u8 filter_netns;	/* 1: a socket must be in netns_filter, or have an address in ip_filter */
	__u8 filter_ip;		/* 1: ip_filter holds target addresses */
	__u8 aggregate_only;	/* 1: count in maps, emit no events */
	__u8 rst_reason;	/* 1: tcp_send_reset has the reason argument (checked in BTF) */
	__u8 read_packets;	/* 1: bpf_probe_read_kernel is allowed (no lockdown): parse RSTs without a socket */
	__u8 pad[3];
	__u32 wakeup_bytes;	/* wake the reader only past this backlog */
	__u32 pad2;
	__u64 retransmit_gap_ns; /* a connection's retransmits closer than this fold into one line */
};

/* An address in IPv6 form; IPv4 is stored v4-mapped (::ffff:a.b.c.d). */
struct tcp_addr {
	__u8 bytes[16];
};

struct tcp_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 duration_ns;	/* connects: SYN to outcome; others: connection age; 0: unknown */
	__u64 bytes_acked;	/* tcp_sock->bytes_acked at the event (0 without a full socket) */
	__u64 bytes_received;	/* tcp_sock->bytes_received */
	struct tcp_addr saddr;	/* local */
	struct tcp_addr daddr;	/* remote */
	__u32 netns;		/* inode of the socket's netns */
	__u32 reason;		/* errno or enum sk_rst_reason, per reason_kind */
	__u32 retransmits;	/* connects: SYNs retransmitted; RETRANSMIT: retransmits in this line */
	__u16 sport;		/* local port, host order */
	__u16 dport;		/* remote port, host order */
	__u8 kind;		/* TCP_EV_* */
	__u8 state;		/* TCP state (enum in net/tcp_states.h) at the event */
	__u8 family;		/* 4 or 6 */
	__u8 direction;		/* TCP_DIR_* */
	__u8 reason_kind;	/* TCP_REASON_* */
	__u8 pad[3];
};

/* Key of peer_stats: what --aggregate and the summary group by. */
struct tcp_peer {
	struct tcp_addr addr;	/* the remote address */
	__u16 port;		/* the server's port: remote for outbound, local for inbound */
	__u8 family;
	__u8 direction;
	__u32 netns;
};

#define TCP_LATENCY_BUCKETS 256

/* Value of peer_stats, updated with atomic adds (shared by all CPUs). */
struct tcp_peer_stats {
	__u64 attempts;		/* connects started (SYN_SENT), or inbound connections (SYN_RECV) */
	__u64 established;
	__u64 refused;
	__u64 timeouts;
	__u64 unreachable;
	__u64 other_failures;	/* ABORTED and FAILED */
	__u64 resets_sent;
	__u64 resets_received;
	__u64 retransmits;	/* every retransmitted segment, SYNs included */
	__u64 errors;
	/* connect latency in microseconds: bucket 8*m + the three bits below the top bit m
	 * (us < 8: bucket us), so a bucket spans 1/8 of its power of two */
	__u32 latency[TCP_LATENCY_BUCKETS];
};

/* Key of reset_counts: resets per peer and reason. */
struct tcp_reset_key {
	struct tcp_peer peer;
	__u32 reason;		/* enum sk_rst_reason, or ~0 when the kernel gives none */
	__u8 sent;		/* 1 sent, 0 received */
	__u8 pad[3];
};

/* One slot of the per-CPU counters array; their sum is exact after detach. */
struct tcp_counters {
	__u64 seen;		/* notable occurrences of matching sockets (each could be a line) */
	__u64 emitted;		/* events committed to the ring buffer */
	__u64 lost;		/* events the ring buffer could not take */
	__u64 suppressed;	/* retransmits folded into a later RETRANSMIT line, or --aggregate */
	__u64 peer_overflow;	/* occurrences not in peer_stats (table full) */
};

_Static_assert(sizeof(struct tcp_config) == 24, "tcp_config layout");
_Static_assert(sizeof(struct tcp_event) == 88, "tcp_event layout");
_Static_assert(sizeof(struct tcp_peer) == 24, "tcp_peer layout");
_Static_assert(sizeof(struct tcp_peer_stats) == 1104, "tcp_peer_stats layout");
_Static_assert(sizeof(struct tcp_reset_key) == 32, "tcp_reset_key layout");
_Static_assert(sizeof(struct tcp_counters) == 40, "tcp_counters layout");

#endif /* KUBECTL_BPF_TCP_H */
