// SPDX-License-Identifier: GPL-2.0
/*
 * tcp: why a target's TCP connections fail. One program per tracepoint, each
 * filtered in the kernel by the socket's netns (or its addresses) before any
 * other work, counting per peer and streaming one tcp_event per notable
 * occurrence (a connect's outcome, a reset, a retransmit burst, an error).
 *
 * Every program is tp_btf and reads the socket with direct BTF loads, never
 * bpf_probe_read_kernel: under lockdown=confidentiality that helper makes a
 * program fail to load. The one packet read (a RST sent without a socket,
 * 6.10+) sits behind cfg.read_packets, which the agent clears under lockdown;
 * a branch that rodata turns off is never verified, so the helper is never
 * resolved. The agent attaches each program on its own: a tracepoint this
 * kernel lacks (inet_sk_error_report before 5.13) costs that program only.
 */
#include "common.bpf.h"
#include "tcp.h"

#define AF_INET_ 2
#define AF_INET6_ 10
#define IPPROTO_TCP_ 6
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
/* include/net/tcp_states.h: stable since 2.6 */
#define ST_ESTABLISHED 1
#define ST_SYN_SENT 2
#define ST_SYN_RECV 3
#define ST_CLOSE 7
#define ST_LISTEN 10
/* errno values are the same on every Linux architecture we build for */
#define ECONNREFUSED_ 111
#define ETIMEDOUT_ 110
#define EHOSTUNREACH_ 113
#define ENETUNREACH_ 101
#define ECONNRESET_ 104
#define EPIPE_ 32
#define NO_REASON 0xffffffff

char LICENSE[] SEC("license") = "GPL";

const volatile struct tcp_config cfg = {};

/* Anchor the record types in the object's BTF, so the agent can check their sizes. */
struct tcp_event *unused_tcp_event __attribute__((unused));
struct tcp_reset_key *unused_tcp_reset_key __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the agent before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} netns_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct tcp_addr);
	__type(value, __u8);
} ip_filter SEC(".maps");

/* What the kernel keeps per connection between tracepoints; keyed by the sock's address. */
struct conn {
	__u64 start_ns;		/* SYN_SENT or SYN_RECV; 0 if it predates the trace */
	__u64 last_line_ns;	/* last RETRANSMIT line */
	__u32 syn_retransmits;
	__u32 unreported;	/* retransmits folded since the last line */
	__u8 direction;
	__u8 closed_from;	/* state before CLOSE, so later hooks still name it */
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tcp_peer);
	__type(value, struct tcp_peer_stats);
} peer_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tcp_reset_key);
	__type(value, __u64);
} reset_counts SEC(".maps");

/* A zeroed tcp_peer_stats to insert from: it is too large for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_peer_stats);
} zero_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_counters);
} counters SEC(".maps");

/* A socket's identity as the filter and the event need it. */
struct sock_info {
	struct tcp_addr saddr;
	struct tcp_addr daddr;
	__u32 netns;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 state;
};

static __always_inline void set_v4_mapped(struct tcp_addr *addr, __be32 v4)
{
	__builtin_memset(addr->bytes, 0, 10);
	addr->bytes[10] = 0xff;
	addr->bytes[11] = 0xff;
	__builtin_memcpy(&addr->bytes[12], &v4, 4);
}

/* sock_common is shared by full, request and timewait sockets: all three read the same. */
static __always_inline bool read_addrs(const struct sock_common *skc, struct sock_info *si)
{
	__u16 family = skc->skc_family;

	if (family == AF_INET_) {
		si->family = 4;
		set_v4_mapped(&si->saddr, skc->skc_rcv_saddr);
		set_v4_mapped(&si->daddr, skc->skc_daddr);
	} else if (family == AF_INET6_) {
		si->family = 6;
		for (int i = 0; i < 4; i++) {
			__u32 s = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			__u32 d = skc->skc_v6_daddr.in6_u.u6_addr32[i];

			__builtin_memcpy(&si->saddr.bytes[i * 4], &s, 4);
			__builtin_memcpy(&si->daddr.bytes[i * 4], &d, 4);
		}
	} else {
		return false;
	}
	si->sport = skc->skc_num;
	if (!si->sport) {
		/* Closing: inet_put_port() zeroed skc_num before CLOSE is traced; inet_sport stays. */
		struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)skc);

		if (tp)
			si->sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	}
	si->dport = bpf_ntohs(skc->skc_dport);
	si->state = skc->skc_state;
	return true;
}

/* The target filter: the netns first (two loads and a lookup), addresses only if needed. */
static __always_inline bool addrs_selected(struct sock_info *si)
{
	if (cfg.filter_netns && bpf_map_lookup_elem(&netns_filter, &si->netns))
		return true;
	if (!cfg.filter_ip)
		return !cfg.filter_netns;
	return bpf_map_lookup_elem(&ip_filter, &si->saddr) || bpf_map_lookup_elem(&ip_filter, &si->daddr);
}

static __always_inline bool sock_selected(const struct sock_common *skc, struct sock_info *si)
{
	si->netns = skc->skc_net.net->ns.inum;
	if (cfg.filter_netns && !cfg.filter_ip && !bpf_map_lookup_elem(&netns_filter, &si->netns))
		return false; /* the cheap exit */
	return read_addrs(skc, si) && addrs_selected(si);
}

static __always_inline struct tcp_counters *get_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void peer_key(struct tcp_peer *key, struct sock_info *si, __u8 direction)
{
	key->addr = si->daddr;
	key->port = direction == TCP_DIR_IN ? si->sport : si->dport;
	key->family = si->family;
	key->direction = direction;
	key->netns = si->netns;
}

/* The peer's stats, inserted zeroed on first use; NULL (counted) when the table is full. */
static __always_inline struct tcp_peer_stats *peer_of(struct sock_info *si, __u8 direction,
						      struct tcp_counters *counts)
{
	struct tcp_peer_stats *stats, *zero;
	struct tcp_peer key = {};
	__u32 index = 0;

	peer_key(&key, si, direction);
	stats = bpf_map_lookup_elem(&peer_stats, &key);
	if (stats)
		return stats;
	zero = bpf_map_lookup_elem(&zero_stats, &index);
	if (zero)
		bpf_map_update_elem(&peer_stats, &key, zero, BPF_NOEXIST); /* EEXIST: another CPU won */
	stats = bpf_map_lookup_elem(&peer_stats, &key);
	if (!stats)
		counts->peer_overflow++;
	return stats;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r;
}

static __always_inline void add_latency(struct tcp_peer_stats *stats, __u64 ns)
{
	__u64 us = ns / 1000;
	__u32 bucket, top;

	if (us < 8) {
		bucket = us;
	} else {
		top = log2_u64(us);
		if (top > 31)
			top = 31;
		bucket = top * 8 + ((us >> (top - 3)) & 7);
	}
	if (bucket < TCP_LATENCY_BUCKETS)
		__sync_fetch_and_add(&stats->latency[bucket], 1);
}

/* A connection's kernel-side state, created when missing (it predates the trace). */
static __always_inline struct conn *conn_of(__u64 key, bool create)
{
	struct conn *c = bpf_map_lookup_elem(&conns, &key);
	struct conn fresh = {};

	if (c || !create)
		return c;
	bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

/*
 * One notable occurrence: counted in seen, then a line, or folded (suppressed),
 * or lost. Returns the reserved event to fill, or NULL when there is none to fill.
 */
static __always_inline struct tcp_event *occurrence(struct tcp_counters *counts, bool fold)
{
	struct tcp_event *e;

	counts->seen++;
	if (fold || cfg.aggregate_only) {
		counts->suppressed++;
		return NULL;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		counts->lost++;
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e)); /* ring slots are not zeroed */
	return e;
}

static __always_inline void fill_event(struct tcp_event *e, struct sock_info *si, __u8 kind,
				       __u8 direction, __u64 now)
{
	e->ts_ns = now;
	e->saddr = si->saddr;
	e->daddr = si->daddr;
	e->netns = si->netns;
	e->sport = si->sport;
	e->dport = si->dport;
	e->kind = kind;
	e->state = si->state;
	e->family = si->family;
	e->direction = direction;
}

/* Bytes and age where the socket is a full TCP socket; direct loads only. */
static __always_inline void fill_bytes(struct tcp_event *e, const struct sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

	if (!tp)
		return;
	e->bytes_acked = tp->bytes_acked;
	e->bytes_received = tp->bytes_received;
}

static __always_inline void submit(struct tcp_event *e, struct tcp_counters *counts)
{
	submit_batched(&events, e, sizeof(*e), cfg.wakeup_bytes);
	counts->emitted++;
}

static __always_inline __u8 connect_outcome(int err, __u32 syn_retransmits)
{
	switch (err) {
	case 0:
		return syn_retransmits ? TCP_EV_TIMEOUT : TCP_EV_ABORTED;
	case ECONNREFUSED_:
		return TCP_EV_REFUSED;
	case ETIMEDOUT_:
		return TCP_EV_TIMEOUT;
	case EHOSTUNREACH_:
	case ENETUNREACH_:
		return TCP_EV_UNREACHABLE;
	}
	return TCP_EV_FAILED;
}

static __always_inline void count_outcome(struct tcp_peer_stats *stats, __u8 kind)
{
	if (!stats)
		return;
	switch (kind) {
	case TCP_EV_CONNECTED:
	case TCP_EV_ACCEPTED:
		__sync_fetch_and_add(&stats->established, 1);
		break;
	case TCP_EV_REFUSED:
		__sync_fetch_and_add(&stats->refused, 1);
		break;
	case TCP_EV_TIMEOUT:
		__sync_fetch_and_add(&stats->timeouts, 1);
		break;
	case TCP_EV_UNREACHABLE:
		__sync_fetch_and_add(&stats->unreachable, 1);
		break;
	default:
		__sync_fetch_and_add(&stats->other_failures, 1);
	}
}

/* A connection leaves SYN_SENT or SYN_RECV: its outcome is one line. */
static __always_inline void handshake_done(const struct sock *sk, struct sock_info *si, struct conn *c,
					   __u8 kind, __u8 direction, __u64 now)
{
	struct tcp_counters *counts = get_counters();
	struct tcp_peer_stats *stats;
	struct tcp_event *e;
	__u64 waited = c && c->start_ns ? now - c->start_ns : 0;
	__u32 syns = c ? c->syn_retransmits : 0;
	int err = 0;

	if (!counts)
		return;
	if (kind != TCP_EV_CONNECTED && kind != TCP_EV_ACCEPTED) {
		err = sk->sk_err;
		kind = connect_outcome(err, syns);
	}
	stats = peer_of(si, direction, counts);
	if (stats) {
		__sync_fetch_and_add(&stats->attempts, 1);
		count_outcome(stats, kind);
		if (kind == TCP_EV_CONNECTED && waited)
			add_latency(stats, waited);
	}
	e = occurrence(counts, false);
	if (!e)
		return;
	fill_event(e, si, kind, direction, now);
	e->duration_ns = waited;
	e->retransmits = syns;
	if (err) {
		e->reason = err;
		e->reason_kind = TCP_REASON_ERRNO;
	}
	submit(e, counts);
}

/*
 * The end of a retransmit burst the connection's close cut short: its folded
 * retransmits get their line, so every retransmit is in exactly one line. The
 * line is an occurrence of its own (the folded ones stay suppressed).
 */
static __always_inline void flush_retransmits(const struct sock *sk, struct sock_info *si, struct conn *c,
					      __u64 now)
{
	struct tcp_counters *counts = get_counters();
	struct tcp_event *e;

	if (!counts)
		return;
	e = occurrence(counts, false);
	if (!e)
		return;
	fill_event(e, si, TCP_EV_RETRANSMIT, c->direction, now);
	e->retransmits = c->unreported;
	e->duration_ns = c->start_ns ? now - c->start_ns : 0;
	fill_bytes(e, sk);
	c->unreported = 0;
	submit(e, counts);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct sock_info si = {};
	__u64 key = (__u64)sk, now;
	struct conn *c;

	if (sk->sk_protocol != IPPROTO_TCP_)
		return 0;
	if (newstate == ST_SYN_RECV) {
		/* A child of a listener: its addresses are copied in after this, so only
		 * the netns can be checked now; the rest is checked at ESTABLISHED. */
		struct conn fresh = { .direction = TCP_DIR_IN };
		__u32 netns = sk->__sk_common.skc_net.net->ns.inum;

		if (cfg.filter_netns && !cfg.filter_ip && !bpf_map_lookup_elem(&netns_filter, &netns))
			return 0;
		fresh.start_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
		return 0;
	}
	if (!sock_selected(&sk->__sk_common, &si)) {
		if (oldstate == ST_SYN_RECV)
			bpf_map_delete_elem(&conns, &key); /* an inbound connection that is not the target's */
		return 0;
	}
	now = bpf_ktime_get_ns();
	if (newstate == ST_SYN_SENT) {
		struct conn fresh = { .start_ns = now, .direction = TCP_DIR_OUT };

		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY); /* the sock may be reused */
		return 0;
	}
	c = bpf_map_lookup_elem(&conns, &key);
	if (oldstate == ST_SYN_SENT && newstate == ST_ESTABLISHED) {
		si.state = ST_ESTABLISHED;
		handshake_done(sk, &si, c, TCP_EV_CONNECTED, TCP_DIR_OUT, now);
	} else if (oldstate == ST_SYN_RECV && newstate == ST_ESTABLISHED) {
		si.state = ST_ESTABLISHED;
		handshake_done(sk, &si, c, TCP_EV_ACCEPTED, TCP_DIR_IN, now);
	} else if (oldstate == ST_SYN_SENT && newstate == ST_CLOSE) {
		si.state = ST_SYN_SENT;
		handshake_done(sk, &si, c, TCP_EV_FAILED, TCP_DIR_OUT, now);
	}
	if (newstate == ST_CLOSE && oldstate != ST_LISTEN) {
		/* Kept, not deleted: a reset or error report that follows names the state it closed from. */
		c = conn_of(key, true);
		if (!c)
			return 0;
		c->closed_from = oldstate;
		if (c->unreported) {
			si.state = oldstate;
			flush_retransmits(sk, &si, c, now);
		}
	}
	return 0;
}

/* The state a hook reports: the one before CLOSE when the socket just closed. */
static __always_inline void effective_state(struct sock_info *si, struct conn *c)
{
	if (si->state == ST_CLOSE && c && c->closed_from)
		si->state = c->closed_from;
}

static __always_inline __u8 direction_of(struct conn *c)
{
	return c ? c->direction : TCP_DIR_UNKNOWN;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_counters *counts;
	struct tcp_peer_stats *stats;
	struct sock_info si = {};
	struct tcp_event *e;
	__u64 key = (__u64)sk, now;
	struct conn *c;
	bool fold;

	if (!sock_selected(&sk->__sk_common, &si))
		return 0;
	counts = get_counters();
	c = conn_of(key, true);
	if (!counts || !c)
		return 0;
	stats = peer_of(&si, c->direction, counts);
	if (stats)
		__sync_fetch_and_add(&stats->retransmits, 1);
	if (si.state == ST_SYN_SENT) {
		c->syn_retransmits++; /* reported with the connect's outcome */
		return 0;
	}
	now = bpf_ktime_get_ns();
	fold = c->last_line_ns && now - c->last_line_ns < cfg.retransmit_gap_ns;
	e = occurrence(counts, fold);
	if (fold) {
		c->unreported++;
		return 0;
	}
	if (!e)
		return 0;
	fill_event(e, &si, TCP_EV_RETRANSMIT, c->direction, now);
	e->retransmits = c->unreported + 1;
	e->duration_ns = c->start_ns ? now - c->start_ns : 0;
	fill_bytes(e, sk);
	c->unreported = 0;
	c->last_line_ns = now;
	submit(e, counts);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(handle_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	struct tcp_counters *counts;
	struct tcp_peer_stats *stats;
	struct sock_info si = {};

	/* The request sock holds the connection's addresses; the listener its netns. */
	if (!sock_selected(&req->__req_common, &si))
		return 0;
	counts = get_counters();
	if (!counts)
		return 0;
	stats = peer_of(&si, TCP_DIR_IN, counts);
	if (stats)
		__sync_fetch_and_add(&stats->retransmits, 1);
	return 0;
}

static __always_inline void count_reset(struct sock_info *si, __u8 direction, __u32 reason, __u8 sent,
					struct tcp_counters *counts)
{
	struct tcp_reset_key key = {};
	struct tcp_peer_stats *stats = peer_of(si, direction, counts);
	__u64 zero = 0, *count;

	if (stats) {
		if (sent)
			__sync_fetch_and_add(&stats->resets_sent, 1);
		else
			__sync_fetch_and_add(&stats->resets_received, 1);
	}
	peer_key(&key.peer, si, direction);
	key.reason = reason;
	key.sent = sent;
	count = bpf_map_lookup_elem(&reset_counts, &key);
	if (!count) {
		bpf_map_update_elem(&reset_counts, &key, &zero, BPF_NOEXIST); /* EEXIST: another CPU won */
		count = bpf_map_lookup_elem(&reset_counts, &key);
	}
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		counts->peer_overflow++;
}

struct ipv4_hdr {
	__u8 version_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6_hdr {
	__be32 version_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * A RST answering a packet no socket took (6.10+ trace it with sk == NULL):
 * the addresses come from that packet, seen from the target's side (it is
 * the destination). Needs bpf_probe_read_kernel: only with cfg.read_packets.
 */
static __always_inline bool packet_selected(const struct sk_buff *skb, struct sock_info *si)
{
	unsigned char *head;
	__u16 ports[2];
	__u32 l4 = 0;
	__u16 nh;

	if (!skb || !skb->dev)
		return false;
	si->netns = skb->dev->nd_net.net->ns.inum;
	if (cfg.filter_netns && !cfg.filter_ip && !bpf_map_lookup_elem(&netns_filter, &si->netns))
		return false;
	bpf_probe_read_kernel(&head, sizeof(head), &skb->head);
	nh = skb->network_header;
	if (bpf_ntohs(skb->protocol) == ETH_P_IP_) {
		struct ipv4_hdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.protocol != IPPROTO_TCP_)
			return false;
		si->family = 4;
		set_v4_mapped(&si->daddr, ip.saddr);
		set_v4_mapped(&si->saddr, ip.daddr);
		l4 = nh + (ip.version_ihl & 0xf) * 4;
	} else if (bpf_ntohs(skb->protocol) == ETH_P_IPV6_) {
		struct ipv6_hdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.nexthdr != IPPROTO_TCP_)
			return false;
		si->family = 6;
		__builtin_memcpy(si->daddr.bytes, ip.saddr, 16);
		__builtin_memcpy(si->saddr.bytes, ip.daddr, 16);
		l4 = nh + sizeof(ip);
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4))
		return false;
	si->dport = bpf_ntohs(ports[0]);
	si->sport = bpf_ntohs(ports[1]);
	si->state = 0;
	return addrs_selected(si);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_counters *counts;
	struct sock_info si = {};
	__u32 reason = NO_REASON;
	struct tcp_event *e;
	struct conn *c = NULL;
	__u8 direction;

	if (sk) {
		if (!sock_selected(&sk->__sk_common, &si))
			return 0;
		c = bpf_map_lookup_elem(&conns, &(__u64){(__u64)sk});
		effective_state(&si, c);
		direction = direction_of(c);
	} else {
		if (!cfg.read_packets || !packet_selected(skb, &si))
			return 0;
		direction = TCP_DIR_IN; /* nothing listens, or the connection is gone */
	}
	if (cfg.rst_reason)
		reason = (__u32)ctx[2]; /* enum sk_rst_reason, the third argument since 6.10 */
	counts = get_counters();
	if (!counts)
		return 0;
	count_reset(&si, direction, reason, 1, counts);
	e = occurrence(counts, false);
	if (!e)
		return 0;
	fill_event(e, &si, TCP_EV_RESET_SENT, direction, bpf_ktime_get_ns());
	if (reason != NO_REASON) {
		e->reason = reason;
		e->reason_kind = TCP_REASON_RST;
	}
	if (c && c->start_ns)
		e->duration_ns = e->ts_ns - c->start_ns;
	if (sk)
		fill_bytes(e, sk);
	submit(e, counts);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(handle_receive_reset, const struct sock *sk)
{
	struct tcp_counters *counts;
	struct sock_info si = {};
	struct tcp_event *e;
	struct conn *c;
	__u8 direction;

	if (!sock_selected(&sk->__sk_common, &si) || si.state == ST_SYN_SENT)
		return 0; /* in SYN_SENT the connect's REFUSED line follows */
	c = bpf_map_lookup_elem(&conns, &(__u64){(__u64)sk});
	direction = direction_of(c);
	counts = get_counters();
	if (!counts)
		return 0;
	count_reset(&si, direction, NO_REASON, 0, counts);
	e = occurrence(counts, false);
	if (!e)
		return 0;
	fill_event(e, &si, TCP_EV_RESET_RECEIVED, direction, bpf_ktime_get_ns());
	if (c && c->start_ns)
		e->duration_ns = e->ts_ns - c->start_ns;
	fill_bytes(e, sk);
	submit(e, counts);
	return 0;
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(handle_error_report, const struct sock *sk)
{
	struct tcp_counters *counts;
	struct tcp_peer_stats *stats;
	struct sock_info si = {};
	struct tcp_event *e;
	struct conn *c;
	int err;

	if (sk->sk_protocol != IPPROTO_TCP_ || !sock_selected(&sk->__sk_common, &si))
		return 0;
	err = sk->sk_err;
	/* Resets have their own lines; a connect's error is its outcome line. */
	if (!err || err == ECONNRESET_ || err == EPIPE_ || err == ECONNREFUSED_ || si.state == ST_SYN_SENT)
		return 0;
	c = bpf_map_lookup_elem(&conns, &(__u64){(__u64)sk});
	if (c && c->closed_from == ST_SYN_SENT && si.state == ST_CLOSE)
		return 0;
	effective_state(&si, c);
	counts = get_counters();
	if (!counts)
		return 0;
	stats = peer_of(&si, direction_of(c), counts);
	if (stats)
		__sync_fetch_and_add(&stats->errors, 1);
	e = occurrence(counts, false);
	if (!e)
		return 0;
	fill_event(e, &si, TCP_EV_ERROR, direction_of(c), bpf_ktime_get_ns());
	e->reason = err;
	e->reason_kind = TCP_REASON_ERRNO;
	if (c && c->start_ns)
		e->duration_ns = e->ts_ns - c->start_ns;
	fill_bytes(e, sk);
	submit(e, counts);
	return 0;
}
