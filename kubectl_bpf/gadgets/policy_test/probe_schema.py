"""The probe gadget's records: the one JSON contract of a live policy probe.

The agent emits one ``probe`` record per attempt, once its evidence window has
closed, then the usual ``summary`` and ``end``. The client turns attempts into
verdicts (PASS, UNEXPECTED-DENY, FLAKY...). Adding a field is fine; renaming
one bumps PROTOCOL_VERSION. Pure declarations: no I/O.

Outcomes, from what the source socket saw and what the kernel dropped:

- ``CONNECTED``: the destination answered: TCP handshake done, or a UDP reply.
- ``REFUSED``: an active refusal came back: a TCP RST (ECONNREFUSED), or for UDP
  an ICMP unreachable with no arrival evidence (a firewall ``reject`` sends the
  same ICMP port unreachable as a closed port). An ICMP host/net unreachable or
  admin-prohibited counts here too. ``arrived`` tells a closed TCP port (true:
  the destination's own stack answered) from a reject on the way (false).
- ``DELIVERED``: no answer, or only an ICMP error, but a drop proves the packet
  reached the destination's stack: a ``NO_SOCKET`` drop of a forward packet in
  a network namespace other than the source's (nothing listens there).
- ``TIMEOUT``: nothing came back and nothing proves arrival. The evidence says
  where the packet died, when this node saw it.
- ``ERROR``: the attempt could not be made (source not found, no free source
  port, netns entry refused); ``error`` says why. Nothing was sent.
- ``ABORTED``: the run stopped (signal, lease, maximum duration) mid-attempt.
"""

from __future__ import annotations

from typing import Literal, NotRequired, Optional, TypedDict

from kubectl_bpf.gadgets.drops import schema as drops_schema
from kubectl_bpf.protocol import records

PROBE = "probe"

Outcome = Literal["CONNECTED", "REFUSED", "DELIVERED", "TIMEOUT", "ERROR", "ABORTED"]
OUTCOMES: tuple[Outcome, ...] = ("CONNECTED", "REFUSED", "DELIVERED", "TIMEOUT", "ERROR", "ABORTED")

# forward: the probe's own packet (source -> destination); reply: a packet back
# to the probe's source port (SYN-ACK, RST, UDP reply) or an ICMP error to the source.
Direction = Literal["forward", "reply"]


class Evidence(TypedDict):
    """Identical drops of one attempt, collapsed: same place, same reason."""

    reason: str  # from the kernel's BTF, e.g. NETFILTER_DROP, NO_SOCKET
    location: str  # func+0xoff, e.g. nft_do_chain+0x3e8
    ifname: Optional[str]
    netns: int  # inode of the netns the packet was dropped in (compare src_netns)
    direction: Direction
    count: int  # a retransmitted SYN dropped twice is one item with count 2
    time: str  # ISO 8601 UTC of the first of them
    # The node whose tracer saw them when it is not the source's: the client adds the
    # drops a destination node's tracer reported (live_plan.add_destination_evidence).
    node: NotRequired[str]


class ProbeRecord(TypedDict):
    id: str  # the probe's id from the params
    attempt: int  # 1-based
    time: str  # ISO 8601 UTC when the attempt started
    src: Optional[str]  # the source address the kernel chose; None if nothing was sent
    src_netns: Optional[int]  # inode of the source pod's netns
    sport: Optional[int]  # from the reserved range; None if nothing was sent
    dst: str
    dport: int
    protocol: str  # TCP or UDP
    outcome: Outcome
    # What the socket alone saw (probe_outcome: established, reply, refused, unreachable,
    # timeout, local_error, arrival, failed, aborted), so a client holding evidence from
    # the destination's node too can classify again with probe_outcome.classify.
    socket_result: str
    arrived: bool  # a drop proved arrival at the destination's stack (NO_SOCKET there)
    rtt_ms: Optional[float]  # until the answer (handshake, RST, ICMP, reply); None without one
    error: Optional[str]  # errno name the socket reported (ECONNREFUSED...) or why it failed
    evidence: list[Evidence]


class ProbeStats(records.Stats):
    """``stats``: the drop accounting of the traced flows, plus probe progress.
    ``events`` counts drop events read from the kernel (evidence or not)."""

    attempts_done: int  # probe records emitted so far
    in_flight: int


class ProbeSummary(drops_schema.DropsSummary):
    """``summary``: drops/events/lost/suppressed and the kernel mode as for
    drops (so a lost event, hence possibly lost evidence, is visible, and so
    is evidence without addresses under lockdown), plus the probe totals."""

    attempts: int  # probe records emitted
    attempts_planned: int
    outcomes: dict[str, int]  # outcome -> attempts
    attempts_per_s: float  # attempts finished per second of probing
    evidence_unmatched: int  # drop events of the traced IPs that belonged to no attempt


# (header, field) in display order.
COLUMNS = (("ID", "id"), ("ATTEMPT", "attempt"), ("PROTO", "protocol"), ("SRC", "src"),
           ("SPORT", "sport"), ("DST", "dst"), ("DPORT", "dport"), ("OUTCOME", "outcome"),
           ("RTT_MS", "rtt_ms"), ("ERROR", "error"))
