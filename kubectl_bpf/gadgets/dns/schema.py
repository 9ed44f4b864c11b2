"""The dns gadget's records and columns: the one JSON contract of its output.

``dns`` is one lookup (a query, its retries and its response, or
UNANSWERED), with the search-list chain it belongs to; the summary
carries the packet counters and the per-name and per-server tallies. Field
names are fixed by the issue: adding one is fine, renaming bumps
PROTOCOL_VERSION.
"""

from __future__ import annotations

from typing import Optional, TypedDict

DNS = "dns"


class AnswerRecord(TypedDict):
    name: str
    type: str  # A, AAAA, CNAME, ... or TYPEnnn
    ttl: int
    data: str  # address or target name; "<N bytes>" for types not decoded


class EdnsRecord(TypedDict):
    udp_size: int
    version: int
    dnssec_ok: bool


class DnsRecord(TypedDict):
    time: str  # of the first query, ISO 8601 UTC
    id: int  # DNS message id of the first query
    name: str
    qtype: str
    rcode: str  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... or UNANSWERED
    latency_ms: Optional[float]  # query to response; None when UNANSWERED
    answers: list[AnswerRecord]
    answer_count: int  # ANCOUNT as sent (answers may hold fewer when partial)
    truncated: bool  # TC bit: the client should retry over TCP
    partial: bool  # the capture cut the response: answers are incomplete
    server: str  # the address that answered (or was asked)
    server_port: int
    client: str  # the pod (cluster) or target label; the client address otherwise
    client_ip: str
    client_port: int
    netns: int
    transport: str  # udp or tcp
    retries: int  # queries resent for this lookup
    edns: Optional[EdnsRecord]  # of the query
    chain: Optional[ChainInfo]  # the search-list chain it belongs to


class ChainInfo(TypedDict):
    """A search-list chain, as each of its lookups carries it."""

    id: int
    base: str  # the name as the application asked, without a search suffix
    step: int  # this lookup's place in the chain, from 1
    steps: int
    names: list[str]  # every name tried, in order
    answered_by: Optional[str]  # the name that got an answer with data; None: none did
    suffix: Optional[str]  # the search suffix that answered; None: as it is, or none did
    wasted_ms: float  # from the chain's first query to the one that got the answer
    total_ms: float


class TallyRecord(TypedDict):
    key: str  # a name, or server address:port
    lookups: int
    queries: int  # including retries
    rcodes: dict[str, int]
    unanswered: int
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    max_ms: Optional[float]


class PacketCounts(TypedDict):
    """seen == received + lost once the sockets are drained."""

    packets_seen: int  # passed by the kernel filter
    packets_received: int  # read by the agent
    packets_lost: int  # the socket's queue was full (PACKET_STATISTICS drops)
    packets_duplicate: int  # loopback's second copy of a packet, skipped
    packets_decoded: int  # DNS messages decoded
    packets_malformed: int  # not DNS, or broken: counted and skipped
    packets_snapped: int  # cut by the snap length (answers may be partial)
    tcp_gaps: int  # TCP streams restarted after a missing segment


class DnsStats(PacketCounts):
    lookups: int
    pending: int  # lookups awaiting an answer or their timeout
    elapsed_s: float


class DnsSummary(PacketCounts):
    duration_s: float
    queries: int
    responses: int
    lookups: int
    unanswered: int
    unmatched_responses: int  # responses to queries sent before the start, or late
    pending: int
    chains: int
    chain_wasted_ms: float
    rcodes: dict[str, int]
    names: list[TallyRecord]  # top names by lookups
    servers: list[TallyRecord]


COLUMNS = (("TIME", "time"), ("CLIENT", "client"), ("SERVER", "server"), ("PROTO", "transport"),
           ("TYPE", "qtype"), ("NAME", "name"), ("RCODE", "rcode"), ("LATENCY", "latency_ms"),
           ("ANSWERS", "answers"))
WIDE_COLUMNS = (*COLUMNS, ("ID", "id"), ("RETRIES", "retries"), ("CHAIN", "chain"), ("FLAGS", "flags"))
TALLY_COLUMNS = (("LOOKUPS", "lookups"), ("QUERIES", "queries"), ("RCODES", "rcodes"),
                 ("UNANSWERED", "unanswered"), ("P50_MS", "p50_ms"), ("P99_MS", "p99_ms"))
