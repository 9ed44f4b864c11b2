"""The tcp gadget's records and columns: the one JSON contract of its events.

The agent builds these payloads (node.py) and the CLI renders them with these
columns. Adding a field is fine; renaming one bumps PROTOCOL_VERSION.

Accounting: ``seen == events + lost + suppressed`` counts the TCP occurrences
(each could have been a line); ``drops``, ``reasons`` and ``flows`` in stats
and summaries belong to the evidence programs (the drops gadget's kfree_skb
program on the same target) and are not part of that sum.
"""

from __future__ import annotations

from typing import Optional, TypedDict

from kubectl_bpf.protocol import records

TCP = "tcp"
PEERS = "peers"

# tcp_event.kind (tcp.h) -> event name, in that order from 1.
EVENTS = ("CONNECTED", "REFUSED", "TIMEOUT", "UNREACHABLE", "ABORTED", "FAILED", "ACCEPTED",
          "RESET-SENT", "RESET-RECEIVED", "RETRANSMIT", "ERROR")
# Events a kernel drop can explain: they look for one.
NEEDS_EVIDENCE = frozenset({"REFUSED", "TIMEOUT", "UNREACHABLE", "FAILED", "RESET-SENT",
                            "RESET-RECEIVED", "RETRANSMIT", "ERROR"})
CONNECT_FAILURES = frozenset({"REFUSED", "TIMEOUT", "UNREACHABLE", "ABORTED", "FAILED"})


class Evidence(TypedDict):
    """The last kernel drop of the connection's flow, and how many there were."""

    packet: str  # SYN, SYN-ACK or segment: which side's packet it was
    direction: str  # outbound (sent by the target's side) or inbound
    reason: str
    reason_code: int
    location: str  # func+0xoff
    time: str
    netns: int
    ifname: Optional[str]
    count: int  # drops of this flow seen so far


class TcpRecord(TypedDict):
    time: str  # ISO 8601 UTC, microseconds
    event: str  # one of EVENTS
    src: str  # the target's side (local address)
    dst: str  # the peer
    sport: int
    dport: int
    direction: str  # outbound (the target connected), inbound, or unknown
    state: Optional[str]  # TCP state at the event (before CLOSE when it just closed)
    reason: Optional[str]  # reset reason (sk_rst_reason, from BTF) or errno name
    reason_code: Optional[int]
    latency_ms: Optional[float]  # connects: SYN to outcome
    duration_ms: Optional[float]  # other events: connection age, if it started while traced
    retransmits: int  # connects: SYNs retransmitted; RETRANSMIT: retransmits in this line
    bytes_acked: Optional[int]
    bytes_received: Optional[int]
    netns: int
    evidence: Optional[Evidence]


class PeerRecord(TypedDict):
    """Exact per-peer counts from the kernel's peer_stats map."""

    peer: str  # address of the other side
    port: int  # the server's port: the peer's for outbound, the target's for inbound
    direction: str
    netns: int
    attempts: int
    established: int
    refused: int
    timeouts: int
    unreachable: int
    other_failures: int
    resets_sent: int
    resets_received: int
    retransmits: int
    errors: int
    resets: dict[str, int]  # "sent:REASON" / "received" -> count
    latency_p50_ms: Optional[float]  # from a histogram: within 1/16 of the value
    latency_p99_ms: Optional[float]


class PeersRecord(TypedDict):
    """Periodic table for --aggregate: cumulative counts since ready."""

    peers: list[PeerRecord]
    peer_count: int
    seen: int


class TcpStats(records.Stats):
    seen: int


class TcpSummary(records.GadgetSummary):
    seen: int
    events_by_kind: dict[str, int]  # lines emitted per event name
    peers: list[PeerRecord]
    peer_count: int
    peer_overflow: int
    evidence: bool  # whether the drop programs ran (see preflight missing_hooks otherwise)


COLUMNS = (("TIME", "time"), ("EVENT", "event"), ("SRC", "src"), ("DST", "dst"), ("STATE", "state"),
           ("DETAIL", "detail"))
WIDE_COLUMNS = (*COLUMNS, ("NETNS", "netns"), ("BYTES", "bytes"))
PEER_COLUMNS = (("PEER", "peer"), ("DIR", "direction"), ("ATTEMPTS", "attempts"), ("OK", "established"),
                ("REFUSED", "refused"), ("TIMEOUT", "timeouts"), ("RESETS", "resets"),
                ("RETRANS", "retransmits"), ("P50", "latency_p50_ms"), ("P99", "latency_p99_ms"))
