// SPDX-License-Identifier: GPL-2.0
/*
 * drops: every packet the kernel frees with a drop reason (skb:kfree_skb),
 * filtered in the kernel to one target, counted per reason and per flow,
 * and streamed as drop_event records through a ring buffer.
 *
 * One object loads on every kernel >= 5.8 with BTF; what differs between
 * kernels is decided by their BTF, never by a version number:
 * - the hook's reason argument (5.17+, or backported) is read only when the
 *   agent found it in btf_trace_kfree_skb (cfg.kernel_reasons, a load-time
 *   constant: the verifier never sees the access elsewhere). Without it the
 *   reason is derived from the freeing function (cfg.locations);
 * - enumerators and fields that come and go (SKB_CONSUMED is 6.3+) are used
 *   only behind bpf_core_*_exists(), so their relocation cannot fail.
 *
 * Entry points, so the agent can fall back when one is refused: tp_btf,
 * raw_tp, the classic tracepoint (which alone needs tracefs), then two for
 * kernel lockdown=confidentiality, where bpf_probe_read_kernel is refused
 * (so the whole program would be): handle_kfree_skb_locked reads the skb by
 * direct BTF loads and the packet headers through the bpf_rdonly_cast kfunc
 * (6.2+), whose untrusted pointers are read by the same fault-safe loads;
 * handle_kfree_skb_locked_bare, for older locked kernels, reads no headers.
 * The agent autoloads exactly one.
 *
 * Packets are parsed from skb->head + network_header, never through skb->sk:
 * most policy drops have no socket (field notes §2).
 */
#define KUBECTL_BPF_NODE_SCOPE
#include "common.bpf.h"
#include "drops.h"

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define PROTO_SCTP 132
#define IPV6_HOPOPTS 0
#define IPV6_ROUTING 43
#define IPV6_FRAGMENT 44
#define IPV6_DSTOPTS 60
#define IPV6_MAX_EXT_HEADERS 4
#define IP_OFFSET_MASK 0x1fff

char LICENSE[] SEC("license") = "GPL";

const volatile struct drops_config cfg = {};

/* Anchors the record type in the object's BTF, so the agent can check its size. */
struct drop_event *unused_drop_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the agent before load */
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
	__type(key, struct drops_addr);
	__type(value, __u8);
} ip_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u8);
} reason_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} reason_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct drop_flow);
	__type(value, __u64);
} flow_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drops_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rate_bucket);
} buckets SEC(".maps");

/* How handle_drop reads kernel memory: a constant per entry point. */
#define READ_PROBE 0	/* bpf_probe_read_kernel (BPF_CORE_READ) */
#define READ_BTF 1	/* direct BTF loads; headers via bpf_rdonly_cast (lockdown, 6.2+) */
#define READ_BARE 2	/* direct BTF loads, no headers (lockdown before 6.2) */

/* Casts a kernel address to a read-only, untrusted pointer to a kernel type:
 * its loads are fault-safe like BTF pointer loads, with no helper call. Weak:
 * only handle_kfree_skb_locked calls it, and only kernels that have it load it. */
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id) __ksym __weak;
#define BTF_CAST(type, addr) ((type *)bpf_rdonly_cast((const void *)(addr), bpf_core_type_id_kernel(type)))

/* Wire formats are fixed by RFCs, so these need no CO-RE relocation. */
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

/* What the filter and the event need from the packet headers. */
struct packet {
	struct drops_addr saddr;
	struct drops_addr daddr;
	__u16 ethertype;
	__u16 sport;
	__u16 dport;
	__u8 ip_proto;
	__u8 family;
	__u8 has_ports;
};

static __always_inline void set_v4_mapped(struct drops_addr *addr, __be32 v4)
{
	__builtin_memset(addr->bytes, 0, 10);
	addr->bytes[10] = 0xff;
	addr->bytes[11] = 0xff;
	__builtin_memcpy(&addr->bytes[12], &v4, 4);
}

/* Returns the offset of the L4 header from head, or 0 when there is none. */
static __always_inline __u32 parse_ipv4(unsigned char *head, __u32 nh, struct packet *pkt)
{
	struct ipv4_hdr ip;

	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
		return 0;
	if ((ip.version_ihl >> 4) != 4 || (ip.version_ihl & 0xf) < 5)
		return 0;
	pkt->family = 4;
	pkt->ip_proto = ip.protocol;
	set_v4_mapped(&pkt->saddr, ip.saddr);
	set_v4_mapped(&pkt->daddr, ip.daddr);
	if (bpf_ntohs(ip.frag_off) & IP_OFFSET_MASK)
		return 0; /* a later fragment carries no L4 header */
	return nh + (ip.version_ihl & 0xf) * 4;
}

static __always_inline __u32 parse_ipv6(unsigned char *head, __u32 nh, struct packet *pkt)
{
	struct ipv6_hdr ip;
	__u32 off = nh + sizeof(ip);
	__u8 next;

	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
		return 0;
	if ((bpf_ntohl(ip.version_flow) >> 28) != 6)
		return 0;
	pkt->family = 6;
	__builtin_memcpy(pkt->saddr.bytes, ip.saddr, 16);
	__builtin_memcpy(pkt->daddr.bytes, ip.daddr, 16);
	next = ip.nexthdr;
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 ext[2];

		if (next != IPV6_HOPOPTS && next != IPV6_ROUTING && next != IPV6_DSTOPTS &&
		    next != IPV6_FRAGMENT)
			break;
		if (bpf_probe_read_kernel(ext, sizeof(ext), head + off))
			return 0;
		if (next == IPV6_FRAGMENT) {
			__be16 frag_off;

			if (bpf_probe_read_kernel(&frag_off, sizeof(frag_off), head + off + 2))
				return 0;
			next = ext[0];
			off += 8;
			if (bpf_ntohs(frag_off) & 0xfff8) {
				pkt->ip_proto = next;
				return 0;
			}
			continue;
		}
		next = ext[0];
		off += (ext[1] + 1) * 8;
	}
	pkt->ip_proto = next;
	return off;
}

static __always_inline void parse_l4(unsigned char *head, __u32 off, struct packet *pkt)
{
	__u16 words[2];

	switch (pkt->ip_proto) {
	case PROTO_TCP:
	case PROTO_UDP:
	case PROTO_SCTP:
		if (bpf_probe_read_kernel(words, sizeof(words), head + off))
			return;
		pkt->sport = bpf_ntohs(words[0]);
		pkt->dport = bpf_ntohs(words[1]);
		pkt->has_ports = 1;
		return;
	case PROTO_ICMP:
	case PROTO_ICMPV6: {
		__u8 type_code[2];

		if (bpf_probe_read_kernel(type_code, sizeof(type_code), head + off))
			return;
		pkt->sport = type_code[0];
		pkt->dport = type_code[1];
		pkt->has_ports = 2;
		return;
	}
	}
}

/* The same parsers through bpf_rdonly_cast pointers, for READ_BTF: typed
 * loads of the kernel's own header structs instead of probe reads. */
static __always_inline __u32 parse_ipv4_btf(unsigned char *head, __u32 nh, struct packet *pkt)
{
	struct iphdr *ip = BTF_CAST(struct iphdr, head + nh);
	__u8 version_ihl = *(__u8 *)ip; /* the version and ihl bitfields */

	if ((version_ihl >> 4) != 4 || (version_ihl & 0xf) < 5)
		return 0;
	pkt->family = 4;
	pkt->ip_proto = ip->protocol;
	set_v4_mapped(&pkt->saddr, ip->saddr);
	set_v4_mapped(&pkt->daddr, ip->daddr);
	if (bpf_ntohs(ip->frag_off) & IP_OFFSET_MASK)
		return 0;
	return nh + (version_ihl & 0xf) * 4;
}

static __always_inline void copy_in6_btf(struct drops_addr *out, struct in6_addr *in)
{
	__u32 *words = (__u32 *)out->bytes;

	for (int i = 0; i < 4; i++)
		words[i] = in->in6_u.u6_addr32[i];
}

static __always_inline __u32 parse_ipv6_btf(unsigned char *head, __u32 nh, struct packet *pkt)
{
	struct ipv6hdr *ip = BTF_CAST(struct ipv6hdr, head + nh);
	__u32 off = nh + sizeof(struct ipv6_hdr);
	__u8 next;

	if ((*(__u8 *)ip >> 4) != 6)
		return 0;
	pkt->family = 6;
	copy_in6_btf(&pkt->saddr, &ip->saddr);
	copy_in6_btf(&pkt->daddr, &ip->daddr);
	next = ip->nexthdr;
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (next != IPV6_HOPOPTS && next != IPV6_ROUTING && next != IPV6_DSTOPTS &&
		    next != IPV6_FRAGMENT)
			break;
		if (next == IPV6_FRAGMENT) {
			struct frag_hdr *frag = BTF_CAST(struct frag_hdr, head + off);

			next = frag->nexthdr;
			off += 8;
			if (bpf_ntohs(frag->frag_off) & 0xfff8) {
				pkt->ip_proto = next;
				return 0;
			}
			continue;
		}
		struct ipv6_opt_hdr *opt = BTF_CAST(struct ipv6_opt_hdr, head + off);

		next = opt->nexthdr;
		off += (opt->hdrlen + 1) * 8;
	}
	pkt->ip_proto = next;
	return off;
}

static __always_inline void parse_l4_btf(unsigned char *head, __u32 off, struct packet *pkt)
{
	switch (pkt->ip_proto) {
	case PROTO_TCP:
	case PROTO_UDP:
	case PROTO_SCTP: {
		struct udphdr *ports = BTF_CAST(struct udphdr, head + off); /* ports lead all three */

		pkt->sport = bpf_ntohs(ports->source);
		pkt->dport = bpf_ntohs(ports->dest);
		pkt->has_ports = 1;
		return;
	}
	case PROTO_ICMP:
	case PROTO_ICMPV6: {
		struct icmphdr *icmp = BTF_CAST(struct icmphdr, head + off); /* icmp6hdr starts the same */

		pkt->sport = icmp->type;
		pkt->dport = icmp->code;
		pkt->has_ports = 2;
		return;
	}
	}
}

static __always_inline __u32 parse_l3_btf(struct sk_buff *skb, unsigned char *head, struct packet *pkt)
{
	__u32 nh = skb->network_header;

	pkt->ethertype = bpf_ntohs(skb->protocol);
	if (pkt->ethertype == ETH_P_IP_)
		return parse_ipv4_btf(head, nh, pkt);
	if (pkt->ethertype == ETH_P_IPV6_)
		return parse_ipv6_btf(head, nh, pkt);
	return 0;
}

/*
 * The L3 header: addresses for the IP filter. Returns the offset of the L4
 * header (0 if none), which is read only for drops that match: a drop the IP
 * filter rejects costs one header read, not two.
 */
static __always_inline __u32 parse_l3(struct sk_buff *skb, unsigned char *head, struct packet *pkt)
{
	__u32 nh = BPF_CORE_READ(skb, network_header);

	pkt->ethertype = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (pkt->ethertype == ETH_P_IP_)
		return parse_ipv4(head, nh, pkt);
	if (pkt->ethertype == ETH_P_IPV6_)
		return parse_ipv6(head, nh, pkt);
	return 0;
}

/* Increment a per-CPU hash counter; false if the table is full. */
static __always_inline bool count_in(void *map, void *key)
{
	__u64 one = 1, *count = bpf_map_lookup_elem(map, key);

	if (count) {
		(*count)++;
		return true;
	}
	if (!bpf_map_update_elem(map, key, &one, BPF_NOEXIST))
		return true;
	/* Another CPU inserted it first: count on our CPU's slot. */
	count = bpf_map_lookup_elem(map, key);
	if (!count)
		return false;
	(*count)++;
	return true;
}

/* True for frees that are not drops. Each enumerator is used only if this
 * kernel has it: an enum value relocation that cannot be resolved makes the
 * verifier reject the whole program (6.1 has no SKB_CONSUMED). */
static __always_inline bool not_a_drop(__u32 reason)
{
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return true;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_NOT_DROPPED_YET) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET))
		return true;
	return false;
}

/* The derived reason of a drop at location, 0 (UNKNOWN) if none applies. */
static __always_inline __u32 derive_reason(__u64 location)
{
	for (int i = 0; i < DROPS_MAX_LOCATIONS; i++) {
		if (i >= cfg.location_count)
			break;
		if (location >= cfg.locations[i].start && location < cfg.locations[i].end)
			return cfg.locations[i].reason;
	}
	return 0;
}

/* The net_device of an skb: by probe read, or by a direct BTF load (tp_btf only). */
static __always_inline struct net_device *skb_dev(struct sk_buff *skb, const bool direct)
{
	return direct ? skb->dev : BPF_CORE_READ(skb, dev);
}

static __always_inline void read_ifname(struct drop_event *e, struct net_device *dev, const bool direct)
{
	__builtin_memset(e->ifname, 0, sizeof(e->ifname)); /* ring slots are not zeroed */
	if (!dev)
		return;
	if (direct) {
		/* two word loads from the BTF pointer: no helper, allowed under lockdown */
		const __u64 *name = (const __u64 *)dev->name;
		__u64 *out = (__u64 *)e->ifname;

		out[0] = name[0];
		out[1] = name[1];
	} else {
		BPF_CORE_READ_STR_INTO(&e->ifname, dev, name);
	}
}

/*
 * The body every entry point shares. reads: READ_* of that entry point, a
 * constant after inlining, so each program holds only its own reads (the
 * lockdown ones no helper that reads kernel memory).
 */
static __always_inline int handle_drop(struct sk_buff *skb, void *location, __u32 reason,
				       const int reads)
{
	const bool direct = reads != READ_PROBE;
	struct packet pkt = {};
	struct drops_counters *counts;
	struct net_device *dev;
	struct drop_event *e;
	struct drop_flow flow;
	__u32 zero = 0, netns, l4 = 0;
	unsigned char *head = 0;
	__u8 match = 0, flags = 0;

	if (cfg.kernel_reasons) {
		if (not_a_drop(reason))
			return 0;
	} else {
		reason = derive_reason((__u64)location);
		if (reason)
			flags |= DROPS_FLAG_REASON_DERIVED;
	}
	if (cfg.filter_reason && !bpf_map_lookup_elem(&reason_filter, &reason))
		return 0;

	dev = skb_dev(skb, direct);
	if (cfg.filter_node || cfg.filter_netns)
		netns = direct ? skb_netns_inum_btf(skb, dev) : skb_netns_inum(skb, dev);
	if (cfg.filter_node && !in_node(netns))
		return 0; /* another node's drop, on a kernel the nodes share */
	if (cfg.filter_netns) {
		if (bpf_map_lookup_elem(&netns_filter, &netns))
			match |= DROPS_MATCH_NETNS;
		if (!match && !cfg.filter_ip)
			return 0; /* the cheap exit: no header parsing */
	}

	if (reads == READ_BARE) {
		pkt.ethertype = bpf_ntohs(skb->protocol); /* no way to read the headers */
	} else if (reads == READ_BTF) {
		head = skb->head;
		l4 = parse_l3_btf(skb, head, &pkt);
	} else {
		head = BPF_CORE_READ(skb, head);
		l4 = parse_l3(skb, head, &pkt);
	}
	if (cfg.filter_ip && pkt.family) {
		if (bpf_map_lookup_elem(&ip_filter, &pkt.saddr))
			match |= DROPS_MATCH_SRC_IP;
		if (bpf_map_lookup_elem(&ip_filter, &pkt.daddr))
			match |= DROPS_MATCH_DST_IP;
	}
	if (!match && (cfg.filter_netns || cfg.filter_ip))
		return 0;
	if (!cfg.filter_netns && !cfg.filter_node) /* only for drops that matched */
		netns = direct ? skb_netns_inum_btf(skb, dev) : skb_netns_inum(skb, dev);
	if (l4 && reads == READ_BTF)
		parse_l4_btf(head, l4, &pkt);
	else if (l4)
		parse_l4(head, l4, &pkt);

	counts = bpf_map_lookup_elem(&counters, &zero);
	if (!counts)
		return 0;
	counts->seen++;
	count_in(&reason_counts, &reason);

	flow.saddr = pkt.saddr;
	flow.daddr = pkt.daddr;
	flow.dport = pkt.has_ports == 1 ? pkt.dport : 0;
	flow.ip_proto = pkt.ip_proto;
	flow.family = pkt.family;
	flow.reason = reason;
	if (!count_in(&flow_counts, &flow))
		counts->flow_overflow++;

	if (cfg.aggregate_only) {
		counts->suppressed++;
		return 0;
	}
	if (cfg.rate_per_cpu) {
		struct rate_bucket *bucket = bpf_map_lookup_elem(&buckets, &zero);

		if (!bucket || !take_token(bucket, cfg.rate_per_cpu, bpf_ktime_get_ns())) {
			counts->suppressed++;
			return 0;
		}
	}

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		counts->lost++;
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->location = (__u64)location;
	e->reason = reason;
	e->netns = netns;
	if (direct) {
		e->ifindex = dev ? dev->ifindex : 0;
		e->iif = skb->skb_iif;
		e->len = skb->len;
	} else {
		e->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
		e->iif = BPF_CORE_READ(skb, skb_iif);
		e->len = BPF_CORE_READ(skb, len);
	}
	e->ethertype = pkt.ethertype;
	e->ip_proto = pkt.ip_proto;
	e->match = match;
	e->saddr = pkt.saddr;
	e->daddr = pkt.daddr;
	e->sport = pkt.sport;
	e->dport = pkt.dport;
	e->has_ports = pkt.has_ports;
	e->family = pkt.family;
	e->flags = flags;
	e->pad = 0;
	read_ifname(e, dev, direct);
	submit_batched(&events, e, sizeof(*e), cfg.wakeup_bytes);
	counts->emitted++;
	return 0;
}

/*
 * ctx[2] (the reason) is read only where the hook has it: cfg.kernel_reasons
 * is a load-time constant, so on a kernel without the argument the verifier
 * prunes the access (tp_btf would refuse it, raw_tp fail to attach).
 */
#define HOOK_REASON(ctx) (cfg.kernel_reasons ? (__u32)(ctx)[2] : 0)

SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_kfree_skb_btf, struct sk_buff *skb, void *location)
{
	return handle_drop(skb, location, HOOK_REASON(ctx), READ_PROBE);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_kfree_skb_locked, struct sk_buff *skb, void *location)
{
	return handle_drop(skb, location, HOOK_REASON(ctx), READ_BTF);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_kfree_skb_locked_bare, struct sk_buff *skb, void *location)
{
	return handle_drop(skb, location, HOOK_REASON(ctx), READ_BARE);
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(handle_kfree_skb_raw, struct sk_buff *skb, void *location)
{
	return handle_drop(skb, location, HOOK_REASON(ctx), READ_PROBE);
}

SEC("tracepoint/skb/kfree_skb")
int handle_kfree_skb_tp(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = 0;

	if (bpf_core_field_exists(ctx->reason))
		reason = ctx->reason;
	return handle_drop((struct sk_buff *)ctx->skbaddr, ctx->location, reason, READ_PROBE);
}
