// SPDX-License-Identifier: GPL-2.0
/*
 * dns: a classic socket filter (BPF_PROG_TYPE_SOCKET_FILTER), the use BPF was
 * made for: tcpdump's filters. The agent attaches it with SO_ATTACH_BPF to an
 * AF_PACKET/SOCK_DGRAM socket opened inside the target's network namespace,
 * so the packet starts at the network header whatever the link layer (veth,
 * loopback, tun) and skb->protocol says which IP version it is.
 *
 * It passes UDP and TCP packets from or to a configured server port, cut to
 * the L3+L4 headers plus snap_bytes of payload, and rejects everything else.
 * It reads only the packet (bpf_skb_load_bytes): no kernel memory, no kprobe,
 * no tracefs, so it loads on every kernel of the matrix and under
 * lockdown=confidentiality.
 */
#include "common.bpf.h"
#include "dns.h"

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17
#define IPV6_HOPOPTS 0
#define IPV6_ROUTING 43
#define IPV6_FRAGMENT 44
#define IPV6_DSTOPTS 60
#define IPV6_MAX_EXT_HEADERS 4
#define IP_MF_OFFSET_MASK 0x1fff
#define PACKET_OUTGOING_ 4
#define LOOPBACK_IFINDEX 1

char LICENSE[] SEC("license") = "GPL";

const volatile struct dns_config cfg = {};

/* Anchors the shared types in the object's BTF, so the agent can check their sizes. */
struct dns_counters *unused_dns_counters __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_counters);
} counters SEC(".maps");

/*
 * Set to 1 by the agent once the socket's queue holds nothing from before the
 * filter was attached: until then every packet is rejected and uncounted, so
 * seen == received + lost holds exactly from the first packet on.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} armed SEC(".maps");

static __always_inline int is_dns_port(__u16 port)
{
#pragma unroll
	for (int i = 0; i < DNS_MAX_PORTS; i++) {
		if (cfg.ports[i] && cfg.ports[i] == port)
			return 1;
	}
	return 0;
}

/* Offset of the L4 header and its protocol, or -1 for anything not worth a look
 * (not IP, a non-first fragment, an IPv6 extension chain longer than 4). */
static __always_inline int l4_offset(struct __sk_buff *skb, __u8 *proto)
{
	__u16 l3 = bpf_ntohs((__u16)skb->protocol);

	if (l3 == ETH_P_IP_) {
		__u8 vihl;
		__u16 frag;

		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) || bpf_skb_load_bytes(skb, 9, proto, 1) ||
		    bpf_skb_load_bytes(skb, 6, &frag, 2))
			return -1;
		if (bpf_ntohs(frag) & IP_MF_OFFSET_MASK)
			return -1; /* only the first fragment carries the ports */
		return (vihl & 0x0f) * 4;
	}
	if (l3 == ETH_P_IPV6_) {
		int offset = 40;
		__u8 next;

		if (bpf_skb_load_bytes(skb, 6, &next, 1))
			return -1;
#pragma unroll
		for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
			__u8 ext[2];

			if (next != IPV6_HOPOPTS && next != IPV6_ROUTING && next != IPV6_DSTOPTS &&
			    next != IPV6_FRAGMENT)
				break;
			if (bpf_skb_load_bytes(skb, offset, ext, 2))
				return -1;
			if (next == IPV6_FRAGMENT) {
				__u16 frag;

				if (bpf_skb_load_bytes(skb, offset + 2, &frag, 2))
					return -1;
				if (bpf_ntohs(frag) & 0xfff8)
					return -1;
				offset += 8;
			} else {
				offset += (ext[1] + 1) * 8;
			}
			next = ext[0];
		}
		*proto = next;
		return offset;
	}
	return -1;
}

SEC("socket")
int dns_filter(struct __sk_buff *skb)
{
	struct dns_counters *count;
	__u32 zero = 0, keep, header, *on;
	__u16 ports[2];
	__u8 proto = 0, tcp_off;
	int l4;

	on = bpf_map_lookup_elem(&armed, &zero);
	if (!on || !*on)
		return 0;
	/* Loopback hands every packet to packet sockets twice: leaving, then
	 * arriving. Only the arriving copy is kept (its ifindex is 1 in every netns). */
	if (skb->pkt_type == PACKET_OUTGOING_ && skb->ifindex == LOOPBACK_IFINDEX)
		return 0;
	l4 = l4_offset(skb, &proto);
	if (l4 < 0 || (proto != PROTO_UDP && proto != PROTO_TCP))
		return 0;
	count = bpf_map_lookup_elem(&counters, &zero);
	if (!count)
		return 0;
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) ||
	    !(is_dns_port(bpf_ntohs(ports[0])) || is_dns_port(bpf_ntohs(ports[1])))) {
		count->ignored++;
		return 0;
	}
	header = l4 + 8;
	if (proto == PROTO_TCP) {
		if (bpf_skb_load_bytes(skb, l4 + 12, &tcp_off, 1))
			return 0;
		header = l4 + (tcp_off >> 4) * 4;
	}
	keep = header + cfg.snap_bytes;
	count->packets++;
	if (skb->len > keep) {
		count->snapped++;
		return keep;
	}
	return skb->len;
}
