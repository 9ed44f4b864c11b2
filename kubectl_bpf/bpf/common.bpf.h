/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel-side helpers every gadget shares: batched ring buffer wakeups, a
 * per-CPU token bucket and the netns of an skb. Header-only and
 * __always_inline, so each gadget object stays self-contained.
 */
#ifndef KUBECTL_BPF_COMMON_BPF_H
#define KUBECTL_BPF_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#define NSEC_PER_SEC 1000000000ULL

/* Bytes a record of this size takes in the ring: an 8-byte header, 8-aligned. */
#define RINGBUF_RECORD_BYTES(size) ((((size) + 8) + 7) & ~7ULL)

/*
 * Submit a reserved record, waking the reader each time the backlog crosses
 * a multiple of wakeup_bytes. A wakeup per record costs ~3-6 us per event
 * under a flood (field notes §2). Waking whenever the backlog is merely above
 * the threshold is no better: a reader behind by a flood stays above it, so
 * every record woke it (measured: ~4.2 us per drop vs ~0.5 us). The reader
 * polls with a short timeout and consumes on timeout, so a trickle below the
 * threshold is still delivered promptly.
 */
static __always_inline void submit_batched(void *ringbuf, void *record, __u32 record_size,
					   __u32 wakeup_bytes)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 pending, bytes = RINGBUF_RECORD_BYTES(record_size);

	if (!wakeup_bytes) {
		flags = BPF_RB_FORCE_WAKEUP;
	} else {
		/* includes this record: it was reserved, so the producer is past it */
		pending = bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA);
		if (pending >= bytes && pending / wakeup_bytes != (pending - bytes) / wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(record, flags);
}

/* State of one CPU's token bucket (a slot of a PERCPU_ARRAY). */
struct rate_bucket {
	__u64 last_ns;
	__u64 tokens;
};

/*
 * Take one token from this CPU's bucket, refilled at rate_per_cpu tokens/s with
 * a burst of one second. Per-CPU state needs no locks; the cost is that the
 * configured rate is split evenly across CPUs.
 */
static __always_inline bool take_token(struct rate_bucket *bucket, __u64 rate_per_cpu, __u64 now)
{
	__u64 elapsed = now - bucket->last_ns;

	if (elapsed >= NSEC_PER_SEC) {
		bucket->tokens = rate_per_cpu;
		bucket->last_ns = now;
	} else {
		__u64 refill = elapsed * rate_per_cpu / NSEC_PER_SEC;

		if (refill) {
			bucket->tokens += refill;
			if (bucket->tokens > rate_per_cpu)
				bucket->tokens = rate_per_cpu;
			bucket->last_ns = now;
		}
	}
	if (!bucket->tokens)
		return false;
	bucket->tokens--;
	return true;
}

/*
 * Inode of the network namespace an skb was dropped in: its device's, or for
 * skbs not yet (or no longer) on a device, its socket's. 0 if neither.
 */
static __always_inline __u32 skb_netns_inum(struct sk_buff *skb, struct net_device *dev)
{
	struct sock *sk;

	if (dev)
		return BPF_CORE_READ(dev, nd_net.net, ns.inum);
	sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return 0;
}

/*
 * skb_netns_inum by direct BTF loads, for tp_btf programs: no helper call, so
 * it loads under lockdown=confidentiality, which refuses bpf_probe_read_kernel.
 * A NULL pointer on the way reads as 0 (the kernel fixes up faulting loads).
 */
static __always_inline __u32 skb_netns_inum_btf(struct sk_buff *skb, struct net_device *dev)
{
	struct sock *sk;

	if (dev)
		return dev->nd_net.net->ns.inum;
	sk = skb->sk;
	if (sk)
		return sk->__sk_common.skc_net.net->ns.inum;
	return 0;
}

#ifdef KUBECTL_BPF_NODE_SCOPE
/*
 * This node's network namespaces (agent/nodescope.py), filled by the agent only
 * when nodes share one kernel: there a drop of another node must not count
 * here, not even by the IP of one of our pods. On a real node it stays unused.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} node_netns SEC(".maps");

static __always_inline bool in_node(__u32 netns)
{
	return bpf_map_lookup_elem(&node_netns, &netns) != 0;
}
#endif /* KUBECTL_BPF_NODE_SCOPE */

#endif /* KUBECTL_BPF_COMMON_BPF_H */
