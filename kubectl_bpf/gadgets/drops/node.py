"""The drops gadget on the node: the Python twins of drops.h, the kernel
configuration, and the decoding of drop events into DropRecord payloads.

Decoding is the agent's hot path (100k+ events/s): one precompiled
struct.Struct per record and caches for everything that repeats in a flood
(addresses, reason names, symbols, the timestamp's seconds).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import time
from typing import Any, Optional

from kubectl_bpf.agent import errors, ksyms, libbpf, loader, preflight, reasons, targets
from kubectl_bpf.gadgets.drops import modes, schema
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.protocol import records

OBJECT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drops.bpf.o")

# Twins of drops.h, little-endian as the host (x86_64, arm64).
EVENT = struct.Struct("<QQIIIIIHBB16s16sHHBBBx16s")  # struct drop_event
FLOW = struct.Struct("<16s16sHBBI")  # struct drop_flow
COUNTERS = struct.Struct("<5Q")  # struct drops_counters
IFNAMSIZ = 16


MAX_LOCATIONS = 16  # DROPS_MAX_LOCATIONS
FLAG_REASON_DERIVED = 1  # DROPS_FLAG_REASON_DERIVED


class DropsLocation(ctypes.Structure):
    """struct drops_location: a function whose drops get a derived reason."""

    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("reason", ctypes.c_uint32),
                ("pad", ctypes.c_uint32)]


class DropsConfig(ctypes.Structure):
    """struct drops_config: the object's only .rodata variable."""

    _fields_ = [("filter_netns", ctypes.c_uint8), ("filter_ip", ctypes.c_uint8),
                ("filter_reason", ctypes.c_uint8), ("aggregate_only", ctypes.c_uint8),
                ("wakeup_bytes", ctypes.c_uint32), ("rate_per_cpu", ctypes.c_uint64),
                ("kernel_reasons", ctypes.c_uint8), ("location_count", ctypes.c_uint8),
                ("filter_node", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 5),
                ("locations", DropsLocation * MAX_LOCATIONS)]


MATCH_NETNS, MATCH_SRC_IP, MATCH_DST_IP = 1, 2, 4
HAS_PORTS, HAS_ICMP = 1, 2
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
ETH_P_ARP = 0x0806
VARIANTS = (loader.Variant("handle_kfree_skb_btf", "tp_btf/kfree_skb"),
            loader.Variant("handle_kfree_skb_raw", "raw_tp/kfree_skb"),
            loader.Variant("handle_kfree_skb_tp", "tracepoint/skb/kfree_skb"))
# No bpf_probe_read_kernel, for lockdown=confidentiality (see modes.py); also the
# last resort when lockdown cannot be read and every other variant is refused.
# LOCKED parses headers through bpf_rdonly_cast (6.2+), LOCKED_BARE cannot.
LOCKED = loader.Variant("handle_kfree_skb_locked", "tp_btf/kfree_skb")
LOCKED_BARE = loader.Variant("handle_kfree_skb_locked_bare", "tp_btf/kfree_skb")
LOCKED_VARIANTS = (LOCKED, LOCKED_BARE)
READS = {LOCKED.program: modes.READS_BTF, LOCKED_BARE.program: modes.READS_BARE}
ALL_VARIANTS = (*VARIANTS, *LOCKED_VARIANTS)
# Names one program to load instead of choosing: to see what a locked-down node
# reports on any kernel (the agent tier runs once with each lockdown program).
PROGRAM_ENV = "KUBECTL_BPF_DROPS_PROGRAM"
# btf_trace_kfree_skb(void *, skb, location, reason[, rx_sk]): reasons from 4 parameters.
REASON_PARAMS = 4
LAYOUT = {"drop_event": EVENT.size, "drop_flow": FLOW.size, "drops_counters": COUNTERS.size,
          "drops_config": ctypes.sizeof(DropsConfig), "drops_location": ctypes.sizeof(DropsLocation)}


def check_layout(obj: libbpf.Object) -> None:
    """Refuse to run when drops.h and these twins disagree: a silent
    mismatch would decode garbage."""
    for struct_name, size in LAYOUT.items():
        found = obj.struct_size(struct_name)
        if found != size:
            raise errors.AgentError(f"struct {struct_name} is {found} bytes in {obj.path} but "
                                    f"{size} in node.py: rebuild the BPF objects")


def addr_key(text: str) -> bytes:
    """An address as struct drops_addr: IPv6 bytes, IPv4 v4-mapped."""
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text)
    return b"\0" * 10 + b"\xff\xff" + socket.inet_pton(socket.AF_INET, text)


def direction_of(match: int, iif: int) -> str:
    """Relative to the target: towards it is ingress. A drop that matched only
    by netns is ingress once the packet was received (skb_iif set)."""
    if match & MATCH_DST_IP:
        return "ingress"
    if match & MATCH_SRC_IP:
        return "egress"
    if match & MATCH_NETNS:
        return "ingress" if iif else "egress"
    return "unknown"


def sum_percpu(value: bytes, words: int) -> tuple[int, ...]:
    """Sum a per-CPU value of `words` u64 fields over all CPUs' 8-aligned slots."""
    slots = struct.unpack(f"<{len(value) // 8}Q", value)
    return tuple(sum(slots[i::words]) for i in range(words))


class Decoder:
    """drop_event bytes to DropRecord payloads, with per-flood caches."""

    def __init__(self, reason_table: reasons.ReasonTable, symbols: ksyms.Symbols) -> None:
        self._reasons = reason_table
        self._symbols = symbols
        # One cache per family: the same 16 bytes read differently as v4-mapped and v6.
        self._addresses: dict[int, dict[bytes, str]] = {4: {}, 6: {}}
        self._reason_names: dict[int, str] = {}
        self._ifnames: dict[bytes, str] = {}
        # CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall time.
        self._wall_offset = time.time() - time.monotonic()
        self._second = -1
        self._second_text = ""

    def address(self, raw: bytes, family: int) -> Optional[str]:
        """None for non-IP packets (family 0)."""
        cache = self._addresses.get(family)
        if cache is None:
            return None
        text = cache.get(raw)
        if text is None:
            if family == 4:
                text = socket.inet_ntop(socket.AF_INET, raw[12:])
            else:
                text = socket.inet_ntop(socket.AF_INET6, raw)
            cache[raw] = text
        return text

    def reason(self, code: int) -> str:
        name = self._reason_names.get(code)
        if name is None:
            name = self._reason_names[code] = self._reasons.name(code)
        return name

    def wall_time(self, ts_ns: int) -> str:
        wall = ts_ns / 1e9 + self._wall_offset
        second = int(wall)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((wall - second) * 1e6):06d}Z"

    def protocol(self, family: int, ip_proto: int, ethertype: int) -> str:
        if family:
            return PROTOCOLS.get(ip_proto, "other")
        return "ARP" if ethertype == ETH_P_ARP else "other"

    def reason_source(self, code: int, flags: int) -> Optional[str]:
        """Where REASON came from: the kernel, the location, or nowhere (UNKNOWN)."""
        if not self._reasons.derived:
            return "kernel"
        return "location" if flags & FLAG_REASON_DERIVED else None

    def decode(self, raw: bytes) -> schema.DropRecord:
        (ts_ns, location, reason, netns, ifindex, iif, length, ethertype, ip_proto, match,
         saddr, daddr, sport, dport, has_ports, family, flags, ifname_raw) = EVENT.unpack_from(raw)
        # Keyed by the name, not the 16 raw bytes: bytes after the NUL are whatever the
        # ring slot held before, and keying on them grew this cache by one entry per event.
        name_bytes = ifname_raw.split(b"\0", 1)[0]
        ifname = self._ifnames.get(name_bytes)
        if ifname is None and name_bytes:
            ifname = self._ifnames[name_bytes] = name_bytes.decode("utf-8", "replace")
        return {
            "time": self.wall_time(ts_ns),
            "reason": self.reason(reason),
            "reason_code": reason,
            "reason_source": self.reason_source(reason, flags),
            "location": self._symbols.symbolize(location),
            "protocol": self.protocol(family, ip_proto, ethertype),
            "ip_proto": ip_proto if family else None,
            "src": self.address(saddr, family),
            "dst": self.address(daddr, family),
            "sport": sport if has_ports == HAS_PORTS else None,
            "dport": dport if has_ports == HAS_PORTS else None,
            "icmp_type": sport if has_ports == HAS_ICMP else None,
            "icmp_code": dport if has_ports == HAS_ICMP else None,
            "direction": direction_of(match, iif),
            "netns": netns,
            "ifname": ifname,
            "ifindex": ifindex,
            "len_bytes": length,
        }

    def flow(self, raw_key: bytes, count: int) -> schema.FlowRecord:
        saddr, daddr, dport, ip_proto, family, reason = FLOW.unpack(raw_key)
        has_ports = family and PROTOCOLS.get(ip_proto) in ("TCP", "UDP", "SCTP")
        return {"src": self.address(saddr, family), "dst": self.address(daddr, family),
                "protocol": self.protocol(family, ip_proto, 0),
                "dport": dport if has_ports else None, "reason": self.reason(reason), "count": count}


def load_reason_table() -> reasons.ReasonTable:
    """The kernel's reasons when its kfree_skb passes one, else the derived table."""
    btf = libbpf.Btf.load_vmlinux()
    try:
        if btf.typedef_proto_params("btf_trace_kfree_skb") < REASON_PARAMS:
            return reasons.ReasonTable.from_locations()
        core = btf.enum_values(btf.find("skb_drop_reason", libbpf.BTF_KIND_ENUM))
        subsys_id = btf.find("skb_drop_reason_subsys", libbpf.BTF_KIND_ENUM)
        subsystems = btf.enum_values(subsys_id) if subsys_id > 0 else {}
    finally:
        btf.free()
    return reasons.ReasonTable(core, subsystems)


def derived_locations(table: reasons.ReasonTable, kallsyms_path: str) -> list[tuple[int, int, int]]:
    """(start, end, derived code) of each LOCATION_REASONS function found in kallsyms."""
    ranges = ksyms.function_ranges(reasons.LOCATION_REASONS, kallsyms_path)
    return [(start, end, table.code(reasons.LOCATION_REASONS[name]))
            for name, start, end in ranges][:MAX_LOCATIONS]


def choose_variants(facts: preflight.HostFacts) -> tuple[loader.Variant, ...]:
    """Lockdown known: only the direct-read program. Unknown (securityfs not
    mounted): the usual order, then the direct-read one if all are refused."""
    if facts.lockdown == "confidentiality":
        return LOCKED_VARIANTS
    usual = VARIANTS if facts.tracefs else VARIANTS[:2]
    return (*usual, *LOCKED_VARIANTS)


class DropsGadget:
    """Implements agent.runner.Gadget for skb:kfree_skb."""

    name = "drops"
    event_type = schema.DROP
    btf_types: tuple[str, ...] = ("btf_trace_kfree_skb",)
    tracepoint = "skb/kfree_skb"
    reads_kernel_memory = False  # degrades under lockdown instead: handle_kfree_skb_locked (modes.py)

    def __init__(self, params: drops_params.DropsParams, *, object_path: str = OBJECT_PATH,
                 kallsyms_path: str = "/proc/kallsyms") -> None:
        self.params = params
        self._object_path = object_path
        self._symbols = ksyms.Symbols(kallsyms_path)
        self._reasons: Optional[reasons.ReasonTable] = None
        self._decoder: Optional[Decoder] = None
        self._attached: Optional[loader.Attached] = None
        self._ring: Optional[libbpf.RingBuffer] = None
        self._batch: list[dict[str, Any]] = []
        self._received = 0
        self._kallsyms_path = kallsyms_path
        self.mode = modes.Mode(modes.REASONS_KERNEL, modes.READS_PROBE)

    # -- attach -----------------------------------------------------------

    def attach(self, target: targets.HostTarget, facts: preflight.HostFacts) -> loader.AttachInfo:
        table = self._reasons = load_reason_table()
        locations = derived_locations(table, self._kallsyms_path) if table.derived else []
        reason_codes = [self._reason_code(name) for name in self.params.reasons]
        if not os.path.exists(self._object_path):
            raise errors.UnsupportedError(f"BPF object {self._object_path} is missing: reinstall kubectl-bpf")
        ncpus = libbpf.num_possible_cpus()

        def configure(obj: libbpf.Object) -> None:
            check_layout(obj)
            config = DropsConfig.from_buffer(obj.map(".rodata").initial_value())
            config.filter_netns = bool(target.netns)
            config.filter_ip = bool(target.ips)
            config.filter_node = bool(target.node_netns)
            config.filter_reason = bool(reason_codes)
            config.aggregate_only = self.params.aggregate
            config.wakeup_bytes = self.params.wakeup_bytes
            config.rate_per_cpu = -(-self.params.rate_limit // ncpus) if self.params.rate_limit else 0
            config.kernel_reasons = not table.derived
            config.location_count = len(locations)
            for slot, (start, end, code) in zip(config.locations, locations):
                slot.start, slot.end, slot.reason = start, end, code
            obj.map("events").set_max_entries(self.params.ring_bytes)

        def populate(obj: libbpf.Object) -> None:
            present = b"\x01"
            for inode in target.netns:
                obj.map("netns_filter").update(struct.pack("<I", inode), present)
            for ip in target.ips:
                obj.map("ip_filter").update(addr_key(ip), present)
            for inode in target.node_netns:
                obj.map("node_netns").update(struct.pack("<I", inode), present)
            for code in reason_codes:
                obj.map("reason_filter").update(struct.pack("<I", code), present)

        self._attached = loader.attach_first(self._object_path, self.variants(facts),
                                             configure=configure, populate=populate)
        reasons_mode = (modes.REASONS_KERNEL if not table.derived else
                        modes.REASONS_DERIVED if locations else modes.REASONS_UNKNOWN)
        self.mode = modes.Mode(reasons_mode, READS.get(self._attached.program.name, modes.READS_PROBE))
        self._decoder = Decoder(self._reasons, self._symbols)
        self._ring = libbpf.RingBuffer(self._attached.obj.map("events"), self._on_sample)
        self._symbols.load_in_background()
        return self._attached.info(self.mode.to_record(facts.kernel))

    def variants(self, facts: preflight.HostFacts) -> tuple[loader.Variant, ...]:
        """The programs to try, in order, unless PROGRAM_ENV names one."""
        forced = os.environ.get(PROGRAM_ENV)
        if not forced:
            return choose_variants(facts)
        for variant in ALL_VARIANTS:
            if variant.program == forced:
                return (variant,)
        raise errors.BadInputError(f"{PROGRAM_ENV}={forced} is not a program of {self._object_path}: "
                                   f"one of {', '.join(v.program for v in ALL_VARIANTS)}")

    def _reason_code(self, name: str) -> int:
        assert self._reasons is not None
        try:
            return self._reasons.code(name)
        except KeyError:
            if self._reasons.derived:
                raise errors.BadInputError(
                    f"drop reason {name!r} cannot be told on kernel {os.uname().release}: its kfree_skb "
                    f"has no reasons; derived from the location: {', '.join(self._reasons.names())}"
                ) from None
            raise errors.BadInputError(f"unknown drop reason {name!r} for kernel {os.uname().release} "
                                       "(see 'kubectl-bpf drops --list-reasons')") from None

    # -- stream -----------------------------------------------------------

    def _on_sample(self, data: int, size: int) -> None:
        assert self._decoder is not None
        self._received += 1
        self._batch.append(self._decoder.decode(ctypes.string_at(data, size)))  # type: ignore[arg-type]

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        assert self._ring is not None
        self._batch = []
        if not self._ring.poll(timeout_ms):
            self._ring.consume()  # batched wakeups: records below the threshold
        return self._batch

    def detach(self) -> list[dict[str, Any]]:
        """Detach, then read every record still in the ring."""
        assert self._attached is not None and self._ring is not None
        self._attached.detach()
        self._batch = []
        while self._ring.consume():
            pass
        return self._batch

    def periodic(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.params.aggregate:
            return []
        flows, flow_count = self._top_flows()
        counters = self._kernel_counters()
        record: schema.FlowsRecord = {"flows": flows, "flow_count": flow_count, "drops": counters[0]}
        return [(schema.FLOWS, dict(record))]

    # -- accounting -------------------------------------------------------

    def _kernel_counters(self) -> tuple[int, ...]:
        assert self._attached is not None
        value = self._attached.obj.map("counters").lookup(b"\0\0\0\0")
        return sum_percpu(value, 5) if value else (0, 0, 0, 0, 0)

    def _counts(self, *, events: int, discarded: int) -> tuple[records.Counts, int, tuple[int, ...]]:
        assert self._attached is not None
        seen, emitted, lost, suppressed, _overflow = counters = self._kernel_counters()
        counts: records.Counts = {
            "drops": seen, "events": events, "lost": lost, "suppressed": suppressed + discarded,
            "missed": int(self._attached.program.info().recursion_misses)}
        return counts, emitted - self._received, counters

    def stats(self, *, events: int, discarded: int) -> records.Stats:
        counts, pending, _ = self._counts(events=events, discarded=discarded)
        return {**counts, "pending": pending, "elapsed_s": 0.0}

    def _top_flows(self) -> tuple[list[schema.FlowRecord], int]:
        assert self._attached is not None and self._decoder is not None
        entries = [(key, sum_percpu(value, 1)[0])
                   for key, value in self._attached.obj.map("flow_counts").items()]
        entries.sort(key=lambda entry: entry[1], reverse=True)
        flows = [self._decoder.flow(key, count) for key, count in entries[:self.params.top_flows]]
        return flows, len(entries)

    def summary(self, *, events: int, discarded: int, duration_s: float) -> schema.DropsSummary:
        assert self._attached is not None and self._decoder is not None
        counts, unaccounted, counters = self._counts(events=events, discarded=discarded)
        per_reason: dict[str, int] = {}
        for key, value in self._attached.obj.map("reason_counts").items():
            name = self._decoder.reason(struct.unpack("<I", key)[0])
            per_reason[name] = per_reason.get(name, 0) + sum_percpu(value, 1)[0]
        flows, flow_count = self._top_flows()
        summary: schema.DropsSummary = {**counts, "unaccounted": unaccounted, "duration_s": duration_s,
                "reasons": dict(sorted(per_reason.items(), key=lambda item: -item[1])),
                "flows": [dict(flow) for flow in flows], "flow_count": flow_count,
                "flow_overflow": counters[4], "mode": self.mode.to_record(os.uname().release)}
        return summary

    def close(self) -> None:
        if self._ring is not None:
            self._ring.free()
            self._ring = None
        if self._attached is not None:
            self._attached.close()
            self._attached = None
