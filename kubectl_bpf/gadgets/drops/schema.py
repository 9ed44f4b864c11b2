"""The drops gadget's records and columns: the one JSON contract of its events.

The agent builds these payloads (node.py), the CLI renders them with these
columns, and the field names of ``drop`` are fixed by the protocol: adding a
field is fine, renaming one bumps PROTOCOL_VERSION.
"""

from __future__ import annotations

from typing import Any, Optional, TypedDict

from kubectl_bpf.protocol import records

DROP = "drop"
FLOWS = "flows"


class DropRecord(TypedDict):
    time: str  # ISO 8601 UTC, microseconds
    reason: str  # from the running kernel's BTF, without SKB_DROP_REASON_
    reason_code: int
    # "kernel": the kernel's own reason; "location": derived from the freeing
    # function (kernels without reasons; the table marks it with *); None: UNKNOWN.
    reason_source: Optional[str]
    location: str  # func+0xoff of the kernel code that dropped it
    protocol: str  # TCP, UDP, ICMP, ICMPv6, SCTP, ARP or other
    ip_proto: Optional[int]
    src: Optional[str]
    dst: Optional[str]
    sport: Optional[int]
    dport: Optional[int]
    icmp_type: Optional[int]
    icmp_code: Optional[int]
    direction: str  # ingress, egress or unknown, relative to the target
    netns: int  # inode of the netns it was dropped in
    ifname: Optional[str]
    ifindex: int
    len_bytes: int


class DropsSummary(records.GadgetSummary):
    mode: dict[str, Any]  # as in the preflight record: how reasons were told, what is degraded


class FlowRecord(TypedDict):
    src: Optional[str]
    dst: Optional[str]
    protocol: str
    dport: Optional[int]
    reason: str
    count: int


class FlowsRecord(TypedDict):
    """Periodic table for --aggregate: cumulative counts since ready."""

    flows: list[FlowRecord]
    flow_count: int
    drops: int


# (header, field) in display order. Endpoints render with their ports.
COLUMNS = (("TIME", "time"), ("DIR", "direction"), ("PROTO", "protocol"), ("SRC", "src"),
           ("DST", "dst"), ("REASON", "reason"), ("LOCATION", "location"))
WIDE_COLUMNS = (*COLUMNS, ("IFACE", "ifname"), ("NETNS", "netns"), ("LEN", "len_bytes"))
FLOW_COLUMNS = (("SRC", "src"), ("DST", "dst"), ("PROTO", "protocol"), ("DPORT", "dport"),
                ("REASON", "reason"), ("COUNT", "count"))
