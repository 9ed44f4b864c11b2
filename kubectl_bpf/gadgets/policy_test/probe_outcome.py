"""What one probe attempt amounts to: drops matched to attempts, and the outcome
from the socket's result plus that evidence. Pure (no sockets, no kernel), so
every rule here is unit-tested without root.

Matching is by flow in user space: the kernel filter (drops gadget, IP filter)
only narrows the stream to the probes' addresses. A drop belongs to an attempt
when its 5-tuple is the attempt's (forward) or the reverse (reply). While an
attempt may still collect evidence its source port is held, so a 5-tuple names
at most one attempt. ICMP errors carry no ports in a drop event (the drops
program does not parse the quoted header), so an ICMP error dropped on its way
back to the source is given to every open attempt between the same two
addresses.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any, Generic, Optional, TypeVar

from kubectl_bpf.gadgets.policy_test import probe_schema

# What the socket saw: the first half of an outcome.
ESTABLISHED = "established"  # TCP handshake completed
REPLY = "reply"  # a UDP datagram came back
REFUSED = "refused"  # ECONNREFUSED: TCP RST, or ICMP port unreachable on a connected UDP socket
UNREACHABLE = "unreachable"  # another ICMP error came back (host/net unreachable, admin prohibited)
TIMEOUT = "timeout"  # nothing came back in time
ARRIVAL = "arrival"  # UDP: still waiting when a drop proved arrival at a port nothing listens on
LOCAL_ERROR = "local_error"  # sending failed on this host (EPERM: the source's own firewall)
FAILED = "failed"  # no attempt was made (source, port, netns): nothing was sent
ABORTED = "aborted"  # the run stopped mid-attempt

# ICMP errors as the socket reports them (Linux icmp_err_convert, icmpv6_err_convert).
UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENONET,
                                errno.ENOPROTOOPT, errno.EACCES})
# ICMP error types (not queries): v4 dest unreachable, source quench, time exceeded,
# parameter problem; v6 dest unreachable, packet too big, time exceeded, parameter problem.
ICMP_ERROR_TYPES = {"ICMP": frozenset({3, 4, 11, 12}), "ICMPv6": frozenset({1, 2, 3, 4})}

FlowKey = tuple[str, str, int, str, int]  # (protocol, src, sport, dst, dport), as the probe sends it

T = TypeVar("T")


def errno_name(number: int) -> str:
    return errno.errorcode.get(number, f"errno {number}")


def result_of_error(number: int) -> str:
    """The socket result for an error reported after the packet left."""
    if number == errno.ECONNREFUSED:
        return REFUSED
    if number in UNREACHABLE_ERRNOS:
        return UNREACHABLE
    if number == errno.ETIMEDOUT:
        return TIMEOUT
    return LOCAL_ERROR


def is_arrival(evidence: probe_schema.Evidence, src_netns: Optional[int]) -> bool:
    """A forward packet found no socket outside the source's netns: it reached
    the destination's transport layer, past every firewall on the way. A
    NO_SOCKET drop is only ever a local delivery, so where it happens is the
    destination (after any DNAT)."""
    return (evidence["direction"] == "forward" and evidence["reason"] == "NO_SOCKET"
            and evidence["netns"] != src_netns)


def classify(protocol: str, result: str, *, arrived: bool) -> probe_schema.Outcome:
    """Outcome from the socket's result and the arrival evidence.

    A TCP RST is REFUSED whether or not arrival was seen (``arrived`` tells a
    closed port from a reject); an ICMP error is DELIVERED only with arrival
    evidence, since a firewall's reject sends the same ICMP as a closed port. A
    lost answer after proven arrival is DELIVERED, not TIMEOUT: the policy let
    the packet through and something on the way back (or the peer) was silent.
    """
    if result in (ESTABLISHED, REPLY):
        return "CONNECTED"
    if result == FAILED:
        return "ERROR"
    if result == ABORTED:
        return "ABORTED"
    if result == ARRIVAL:
        return "DELIVERED"
    if result == REFUSED and protocol == "TCP":
        return "REFUSED"
    if arrived:
        return "DELIVERED"
    if result in (REFUSED, UNREACHABLE):
        return "REFUSED"
    return "TIMEOUT"


def add_evidence(items: list[probe_schema.Evidence], drop: Mapping[str, Any],
                 direction: probe_schema.Direction) -> None:
    """Fold one drop record into an attempt's evidence: repeats of the same
    drop (a retransmitted SYN) raise a count instead of adding an item."""
    for item in items:
        if (item["reason"], item["location"], item["ifname"], item["netns"], item["direction"]) == (
                drop["reason"], drop["location"], drop["ifname"], drop["netns"], direction):
            item["count"] += 1
            return
    items.append({"reason": drop["reason"], "location": drop["location"], "ifname": drop["ifname"],
                  "netns": drop["netns"], "direction": direction, "count": 1, "time": drop["time"]})


class EvidenceIndex(Generic[T]):
    """Open attempts by flow, to find the attempts a drop record belongs to."""

    def __init__(self) -> None:
        self._flows: dict[FlowKey, T] = {}
        self._pairs: dict[tuple[str, str], list[T]] = {}  # (src, dst) -> open attempts, for ICMP

    def __len__(self) -> int:
        return len(self._flows)

    def register(self, key: FlowKey, item: T) -> None:
        if key in self._flows:
            raise ValueError(f"flow {key} already belongs to an open attempt")
        self._flows[key] = item
        self._pairs.setdefault((key[1], key[3]), []).append(item)

    def unregister(self, key: FlowKey) -> None:
        item = self._flows.pop(key, None)
        if item is None:
            return
        pair = (key[1], key[3])
        remaining = [other for other in self._pairs.get(pair, []) if other is not item]
        if remaining:
            self._pairs[pair] = remaining
        else:
            self._pairs.pop(pair, None)

    def match(self, drop: Mapping[str, Any]) -> list[tuple[T, probe_schema.Direction]]:
        """The open attempts this drop record is evidence for, with its direction."""
        protocol, src, dst = drop.get("protocol"), drop.get("src"), drop.get("dst")
        if src is None or dst is None:
            return []
        if protocol in ("TCP", "UDP"):
            sport, dport = drop.get("sport"), drop.get("dport")
            if sport is None or dport is None:
                return []  # a later IP fragment: no ports to match on
            forward = self._flows.get((protocol, src, sport, dst, dport))
            if forward is not None:
                return [(forward, "forward")]
            reply = self._flows.get((protocol, dst, dport, src, sport))
            return [(reply, "reply")] if reply is not None else []
        if drop.get("icmp_type") in ICMP_ERROR_TYPES.get(str(protocol), ()):
            return [(item, "reply") for item in self._pairs.get((dst, src), [])]
        return []
