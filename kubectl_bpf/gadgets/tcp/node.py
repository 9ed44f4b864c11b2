"""The tcp gadget on the node: the Python twins of tcp.h, the kernel
configuration, the decoding of tcp events into TcpRecord payloads, and the
drop evidence attached to failures.

Evidence: the same session runs the drops gadget's kfree_skb program on the
same target (its netns and addresses) and keeps the last drop of each recent
TCP flow. The drop that explains a failure comes before it (the SYN dropped
seconds before the TIMEOUT), so each poll reads the tcp ring first and the
drops ring second: every drop that preceded a tcp event is indexed before
that event looks for one. A kernel where the drop program cannot run (older
than 5.17, or lockdown) reports it in ``preflight`` and the events run on.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import os
import socket
import struct
import time
from typing import Any, Optional

from kubectl_bpf.agent import errors, libbpf, loader, preflight, targets
from kubectl_bpf.gadgets.drops import node as drops_node
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.gadgets.tcp import params as tcp_params
from kubectl_bpf.gadgets.tcp import schema
from kubectl_bpf.protocol import records

OBJECT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp.bpf.o")

# Twins of tcp.h, little-endian as the host (x86_64, arm64).
EVENT = struct.Struct("<QQQQ16s16sIIIHHBBBBB3x")  # struct tcp_event
PEER = struct.Struct("<16sHBBI")  # struct tcp_peer
LATENCY_BUCKETS = 256
PEER_STATS = struct.Struct(f"<10Q{LATENCY_BUCKETS}I")  # struct tcp_peer_stats
RESET_KEY = struct.Struct("<24sIB3x")  # struct tcp_reset_key
COUNTERS = struct.Struct("<5Q")  # struct tcp_counters


class TcpConfig(ctypes.Structure):
    """struct tcp_config: the object's only .rodata variable."""

    _fields_ = [("filter_netns", ctypes.c_uint8), ("filter_ip", ctypes.c_uint8),
                ("aggregate_only", ctypes.c_uint8), ("rst_reason", ctypes.c_uint8),
                ("read_packets", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3),
                ("wakeup_bytes", ctypes.c_uint32), ("pad2", ctypes.c_uint32),
                ("retransmit_gap_ns", ctypes.c_uint64)]


LAYOUT = {"tcp_event": EVENT.size, "tcp_peer": PEER.size, "tcp_peer_stats": PEER_STATS.size,
          "tcp_reset_key": RESET_KEY.size, "tcp_counters": COUNTERS.size,
          "tcp_config": ctypes.sizeof(TcpConfig)}
HOOKS = (
    loader.Hook("handle_set_state", "tp_btf/inet_sock_set_state", "btf_trace_inet_sock_set_state",
                required=True),
    loader.Hook("handle_retransmit", "tp_btf/tcp_retransmit_skb", "btf_trace_tcp_retransmit_skb"),
    loader.Hook("handle_retransmit_synack", "tp_btf/tcp_retransmit_synack",
                "btf_trace_tcp_retransmit_synack"),
    loader.Hook("handle_send_reset", "tp_btf/tcp_send_reset", "btf_trace_tcp_send_reset"),
    loader.Hook("handle_receive_reset", "tp_btf/tcp_receive_reset", "btf_trace_tcp_receive_reset"),
    loader.Hook("handle_error_report", "tp_btf/inet_sk_error_report", "btf_trace_inet_sk_error_report"),
)
EVIDENCE_HOOK = "evidence:tp_btf/kfree_skb"
# tcp_send_reset(sk, skb, reason) since 6.10: with the context pointer, 4 parameters.
RESET_REASON_ARITY = 4
RST_PREFIX = "SK_RST_REASON_"
REASON_NONE, REASON_ERRNO, REASON_RST = 0, 1, 2
NO_REASON = 0xFFFFFFFF
DIRECTIONS = {0: "unknown", 1: "outbound", 2: "inbound"}
# include/net/tcp_states.h
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
          12: "NEW_SYN_RECV"}
V4_MAPPED = b"\0" * 10 + b"\xff\xff"
CONNECT_EVENTS = frozenset({"CONNECTED", "ACCEPTED"}) | schema.CONNECT_FAILURES
# Flows whose last drop is remembered for evidence: LRU-bounded, so a drop flood
# costs a fixed amount of memory (~300 B per flow).
EVIDENCE_FLOWS = 8192
EVIDENCE_MAX_AGE_S = 300.0
EVIDENCE_RING_BYTES = 1 << 20
# Reasons that explain nothing when the flow has a specific one (a connection's last
# packets are freed as NOT_SPECIFIED when it closes).
VAGUE_REASONS = frozenset({"NOT_SPECIFIED"})


def check_layout(obj: libbpf.Object) -> None:
    """Refuse to run when tcp.h and these twins disagree."""
    for struct_name, size in LAYOUT.items():
        found = obj.struct_size(struct_name)
        if found != size:
            raise errors.AgentError(f"struct {struct_name} is {found} bytes in {obj.path} but "
                                    f"{size} in node.py: rebuild the BPF objects")


def sum_percpu(value: bytes, words: int) -> tuple[int, ...]:
    slots = struct.unpack(f"<{len(value) // 8}Q", value)
    return tuple(sum(slots[i::words]) for i in range(words))


def bucket_bounds_us(bucket: int) -> tuple[int, int]:
    """[low, high) microseconds of a latency bucket (tcp.h: 8 per power of two
    from 8 us up, buckets 0-7 one microsecond each, 8-23 never used)."""
    if bucket < 8:
        return bucket, bucket + 1
    if bucket < 24:
        return 8, 8
    top, sub = divmod(bucket, 8)
    return (8 + sub) << (top - 3), (9 + sub) << (top - 3)


def percentile_ms(histogram: tuple[int, ...], fraction: float) -> Optional[float]:
    """The bucket midpoint holding that fraction of samples; None without samples."""
    total = sum(histogram)
    if not total:
        return None
    rank = fraction * total
    running = 0
    for bucket, count in enumerate(histogram):
        running += count
        if count and running >= rank:
            low, high = bucket_bounds_us(bucket)
            return round((low + high) / 2 / 1000, 3)
    return None


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, f"ERRNO_{code}")


def load_reset_reasons(btf: libbpf.Btf) -> dict[int, str]:
    """enum sk_rst_reason from the running kernel (6.10+); empty before."""
    type_id = btf.find("sk_rst_reason", libbpf.BTF_KIND_ENUM)
    if type_id < 0:
        return {}
    return {code: name.removeprefix(RST_PREFIX) for name, code in btf.enum_values(type_id).items()}


def flow_key(a: Optional[str], a_port: Optional[int], b: Optional[str],
             b_port: Optional[int]) -> tuple[Any, ...]:
    """One key for both directions of a flow."""
    return tuple(sorted(((a or "", a_port or 0), (b or "", b_port or 0))))


class Decoder:
    """tcp_event bytes to TcpRecord payloads, with caches for what repeats."""

    def __init__(self, reset_reasons: dict[int, str]) -> None:
        self._reset_reasons = reset_reasons
        self._addresses: dict[int, dict[bytes, str]] = {4: {}, 6: {}}
        self._wall_offset = time.time() - time.monotonic()
        self._second = -1
        self._second_text = ""

    def address(self, raw: bytes, family: int) -> str:
        """A v4-mapped address of a dual-stack socket (a server on ``::``) reads as
        IPv4: the same peer as its IPv4 sockets, pods and drops."""
        cache = self._addresses.setdefault(family, {})
        text = cache.get(raw)
        if text is None:
            text = (socket.inet_ntop(socket.AF_INET, raw[12:]) if family == 4 or raw[:12] == V4_MAPPED
                    else socket.inet_ntop(socket.AF_INET6, raw))
            cache[raw] = text
        return text

    def wall_time(self, ts_ns: int) -> str:
        """strftime once per second: a flood's events mostly share their second."""
        wall = ts_ns / 1e9 + self._wall_offset
        second = int(wall)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((wall - second) * 1e6):06d}Z"

    def reason(self, kind: int, code: int) -> Optional[str]:
        if kind == REASON_ERRNO:
            return errno_name(code)
        if kind == REASON_RST:
            return self._reset_reasons.get(code, f"RST_REASON_{code}")
        return None

    def decode(self, raw: bytes) -> schema.TcpRecord:
        (ts_ns, duration_ns, bytes_acked, bytes_received, saddr, daddr, netns, reason, retransmits,
         sport, dport, kind, state, family, direction, reason_kind) = EVENT.unpack_from(raw)
        event = schema.EVENTS[kind - 1] if 0 < kind <= len(schema.EVENTS) else f"KIND_{kind}"
        connect = event in CONNECT_EVENTS
        duration_ms = round(duration_ns / 1e6, 3) if duration_ns else None
        full_socket = bool(bytes_acked or bytes_received) or event in ("RESET-RECEIVED", "ERROR")
        return {
            "time": self.wall_time(ts_ns), "event": event,
            "src": self.address(saddr, family), "dst": self.address(daddr, family),
            "sport": sport, "dport": dport, "direction": DIRECTIONS.get(direction, "unknown"),
            "state": STATES.get(state), "reason": self.reason(reason_kind, reason),
            "reason_code": reason if reason_kind else None,
            "latency_ms": duration_ms if connect else None,
            "duration_ms": None if connect else duration_ms,
            "retransmits": retransmits,
            "bytes_acked": bytes_acked if full_socket and not connect else None,
            "bytes_received": bytes_received if full_socket and not connect else None,
            "netns": netns, "evidence": None,
        }

    def peer(self, raw_key: bytes, raw_stats: bytes, resets: dict[str, int]) -> schema.PeerRecord:
        addr, port, family, direction, netns = PEER.unpack(raw_key)
        values = PEER_STATS.unpack(raw_stats)
        (attempts, established, refused, timeouts, unreachable, other, resets_sent, resets_received,
         retransmits, errors_) = values[:10]
        histogram = values[10:]
        return {"peer": self.address(addr, family), "port": port,
                "direction": DIRECTIONS.get(direction, "unknown"), "netns": netns,
                "attempts": attempts, "established": established, "refused": refused,
                "timeouts": timeouts, "unreachable": unreachable, "other_failures": other,
                "resets_sent": resets_sent, "resets_received": resets_received,
                "retransmits": retransmits, "errors": errors_, "resets": resets,
                "latency_p50_ms": percentile_ms(histogram, 0.5),
                "latency_p99_ms": percentile_ms(histogram, 0.99)}


class EvidenceIndex:
    """The last specific drop of each recent TCP flow, LRU-bounded."""

    def __init__(self, max_flows: int = EVIDENCE_FLOWS) -> None:
        self._flows: collections.OrderedDict[tuple[Any, ...], tuple[float, dict[str, Any], int]] = (
            collections.OrderedDict())
        self._max = max_flows

    def add(self, drop: dict[str, Any], now: float) -> None:
        if drop.get("protocol") != "TCP":
            return
        key = flow_key(drop.get("src"), drop.get("sport"), drop.get("dst"), drop.get("dport"))
        previous = self._flows.pop(key, None)
        if previous is not None and drop.get("reason") in VAGUE_REASONS and previous[1].get("reason") not in (
                VAGUE_REASONS):
            drop = previous[1]  # the RST or FIN freed at close says less than the drop before it
        self._flows[key] = (now, drop, (previous[2] if previous else 0) + 1)
        if len(self._flows) > self._max:
            self._flows.popitem(last=False)

    def explain(self, record: schema.TcpRecord, now: float) -> Optional[schema.Evidence]:
        key = flow_key(record["src"], record["sport"], record["dst"], record["dport"])
        found = self._flows.get(key)
        if found is None or now - found[0] > EVIDENCE_MAX_AGE_S:
            return None
        _, drop, count = found
        ours = drop.get("src") == record["src"] and drop.get("sport") == record["sport"]
        if record["event"] in schema.CONNECT_FAILURES:
            packet = "SYN" if ours else "SYN-ACK"
        elif record["event"] == "RESET-SENT" and record["state"] is None:
            packet = "SYN" if not ours else "segment"  # the peer's SYN that nothing took
        else:
            packet = "segment"
        return {"packet": packet, "direction": "outbound" if ours else "inbound",
                "reason": drop["reason"], "reason_code": drop["reason_code"], "location": drop["location"],
                "time": drop["time"], "netns": drop["netns"], "ifname": drop.get("ifname"), "count": count}


class TcpGadget:
    """Implements agent.runner.Gadget for the TCP tracepoints (+ drops as evidence)."""

    name = "tcp"
    event_type = schema.TCP
    btf_types: tuple[str, ...] = ()  # each hook is checked on its own (loader.attach_available)
    tracepoint = "sock/inet_sock_set_state"
    reads_kernel_memory = False  # direct BTF loads only; see tcp.bpf.c

    def __init__(self, params: tcp_params.TcpParams, *, object_path: str = OBJECT_PATH) -> None:
        self.params = params
        self._object_path = object_path
        self._attached: Optional[loader.AttachedSet] = None
        self._ring: Optional[libbpf.RingBuffer] = None
        self._decoder: Optional[Decoder] = None
        self._drops: Optional[drops_node.DropsGadget] = None
        self._evidence = EvidenceIndex()
        self._batch: list[schema.TcpRecord] = []
        self._received = 0
        self._by_kind: collections.Counter[str] = collections.Counter()

    # -- attach -----------------------------------------------------------

    def attach(self, target: targets.HostTarget, facts: preflight.HostFacts) -> loader.AttachInfo:
        if not os.path.exists(self._object_path):
            raise errors.UnsupportedError(f"BPF object {self._object_path} is missing: reinstall kubectl-bpf")
        btf = libbpf.Btf.load_vmlinux()
        try:
            reset_reasons = load_reset_reasons(btf)
            rst_reason = btf.typedef_arity("btf_trace_tcp_send_reset") >= RESET_REASON_ARITY
            present = {hook.btf_type for hook in HOOKS
                       if btf.find(hook.btf_type, libbpf.BTF_KIND_TYPEDEF) > 0}
        finally:
            btf.free()

        def configure(obj: libbpf.Object) -> None:
            check_layout(obj)
            config = TcpConfig.from_buffer(obj.map(".rodata").initial_value())
            # A socket's netns is authoritative: with one, the addresses would only add the
            # peer's own sockets (a RST its kernel sent us). Addresses alone: --ip.
            config.filter_netns = bool(target.netns)
            config.filter_ip = bool(target.ips) and not target.netns
            config.aggregate_only = self.params.aggregate
            config.rst_reason = rst_reason
            config.read_packets = facts.lockdown != "confidentiality"
            config.wakeup_bytes = self.params.wakeup_bytes
            config.retransmit_gap_ns = int(self.params.retransmit_gap_s * 1e9)
            obj.map("events").set_max_entries(self.params.ring_bytes)

        def populate(obj: libbpf.Object) -> None:
            for inode in target.netns:
                obj.map("netns_filter").update(struct.pack("<I", inode), b"\x01")
            for ip in () if target.netns else target.ips:
                obj.map("ip_filter").update(drops_node.addr_key(ip), b"\x01")

        self._attached = loader.attach_available(self._object_path, HOOKS, kernel_has=present.__contains__,
                                                 configure=configure, populate=populate)
        self._decoder = Decoder(reset_reasons)
        self._ring = libbpf.RingBuffer(self._attached.obj.map("events"), self._on_sample)
        if self.params.evidence:
            self._attach_evidence(target, facts)
        else:
            self._attached.missing[EVIDENCE_HOOK] = "turned off (--no-evidence)"
        return self._attached.info()

    def _attach_evidence(self, target: targets.HostTarget, facts: preflight.HostFacts) -> None:
        """The drops program on the same target; its absence is reported, not fatal.
        Under lockdown it picks its own lockdown variant, or says why it cannot."""
        assert self._attached is not None
        drops = drops_node.DropsGadget(drops_params.DropsParams(ring_bytes=EVIDENCE_RING_BYTES))
        try:
            preflight.check_host(btf_types=drops.btf_types, tracepoint=drops.tracepoint,
                                 reads_kernel_memory=drops.reads_kernel_memory)
            drops.attach(target, facts)
        except errors.AgentError as exc:
            drops.close()
            self._attached.missing[EVIDENCE_HOOK] = str(exc)
            return
        self._drops = drops

    # -- stream -----------------------------------------------------------

    def _on_sample(self, data: int, size: int) -> None:
        assert self._decoder is not None
        self._received += 1
        self._batch.append(self._decoder.decode(ctypes.string_at(data, size)))

    def _with_evidence(self, drops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        for drop in drops:
            self._evidence.add(drop, now)
        batch, self._batch = self._batch, []
        for record in batch:
            self._by_kind[record["event"]] += 1
            if record["event"] in schema.NEEDS_EVIDENCE:
                record["evidence"] = self._evidence.explain(record, now)
        return [dict(record) for record in batch]

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        assert self._ring is not None
        if not self._ring.poll(timeout_ms):
            self._ring.consume()  # batched wakeups: records below the threshold
        return self._with_evidence(self._drops.poll(0) if self._drops else [])

    def detach(self) -> list[dict[str, Any]]:
        """Detach everything, then read every record still in the rings."""
        assert self._attached is not None and self._ring is not None
        self._attached.detach()
        drops = self._drops.detach() if self._drops else []
        while self._ring.consume():
            pass
        return self._with_evidence(drops)

    def periodic(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.params.aggregate:
            return []
        peers, peer_count = self._top_peers()
        record: schema.PeersRecord = {"peers": peers, "peer_count": peer_count,
                                      "seen": self._kernel_counters()[0]}
        return [(schema.PEERS, dict(record))]

    # -- accounting -------------------------------------------------------

    def _kernel_counters(self) -> tuple[int, ...]:
        assert self._attached is not None
        value = self._attached.obj.map("counters").lookup(b"\0\0\0\0")
        return sum_percpu(value, 5) if value else (0, 0, 0, 0, 0)

    def _resets(self) -> dict[bytes, dict[str, int]]:
        """peer key -> {"sent:REASON" or "received": count}."""
        assert self._attached is not None and self._decoder is not None
        resets: dict[bytes, dict[str, int]] = {}
        for key, value in self._attached.obj.map("reset_counts").items():
            peer, reason, sent = RESET_KEY.unpack(key)
            label = "received"
            if sent:
                label = "sent" if reason == NO_REASON else f"sent:{self._decoder.reason(REASON_RST, reason)}"
            per_peer = resets.setdefault(peer, {})
            per_peer[label] = per_peer.get(label, 0) + struct.unpack("<Q", value)[0]
        return resets

    def _top_peers(self) -> tuple[list[schema.PeerRecord], int]:
        assert self._attached is not None and self._decoder is not None
        resets = self._resets()
        peers = [self._decoder.peer(key, value, resets.get(key, {}))
                 for key, value in self._attached.obj.map("peer_stats").items()]
        peers.sort(key=lambda peer: (-(peer["attempts"] + peer["retransmits"] + peer["resets_sent"]
                                       + peer["resets_received"] + peer["errors"]), peer["peer"]))
        return peers[:self.params.top_peers], len(peers)

    def _counts(self, *, events: int, discarded: int) -> tuple[records.Counts, int, int]:
        assert self._attached is not None
        seen, emitted, lost, suppressed, _overflow = self._kernel_counters()
        drops = self._drops.stats(events=0, discarded=0)["drops"] if self._drops else 0
        counts: records.Counts = {"drops": drops, "events": events, "lost": lost,
                                  "suppressed": suppressed + discarded,
                                  "missed": self._attached.recursion_misses()}
        return counts, emitted - self._received, seen

    def stats(self, *, events: int, discarded: int) -> records.Stats:
        counts, pending, seen = self._counts(events=events, discarded=discarded)
        stats: schema.TcpStats = {**counts, "pending": pending, "elapsed_s": 0.0, "seen": seen}
        return stats

    def summary(self, *, events: int, discarded: int, duration_s: float) -> records.GadgetSummary:
        counts, unaccounted, seen = self._counts(events=events, discarded=discarded)
        peers, peer_count = self._top_peers()
        drops_summary = (self._drops.summary(events=0, discarded=0, duration_s=duration_s)
                         if self._drops else None)
        summary: schema.TcpSummary = {
            **counts, "unaccounted": unaccounted, "duration_s": duration_s, "seen": seen,
            "events_by_kind": dict(self._by_kind.most_common()),
            "reasons": drops_summary["reasons"] if drops_summary else {},
            "flows": drops_summary["flows"] if drops_summary else [],
            "flow_count": drops_summary["flow_count"] if drops_summary else 0,
            "flow_overflow": drops_summary["flow_overflow"] if drops_summary else 0,
            "peers": peers, "peer_count": peer_count, "peer_overflow": self._kernel_counters()[4],
            "evidence": self._drops is not None}
        return summary

    def close(self) -> None:
        if self._ring is not None:
            self._ring.free()
            self._ring = None
        if self._drops is not None:
            self._drops.close()
            self._drops = None
        if self._attached is not None:
            self._attached.close()
            self._attached = None
