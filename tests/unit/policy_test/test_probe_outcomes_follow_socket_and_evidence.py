"""An attempt's outcome comes from what its socket saw plus the drops matched to
its flow; drops of other flows are never attributed."""

from __future__ import annotations

import errno
from typing import Any, Optional

import pytest

from kubectl_bpf.gadgets.policy_test import probe_outcome as outcome
from kubectl_bpf.gadgets.policy_test import probe_schema

SRC, DST = "10.0.0.1", "10.0.0.2"
SRC_NETNS, DST_NETNS = 4026531001, 4026531002


def drop(*, src: str = SRC, dst: str = DST, sport: Optional[int] = 42000, dport: Optional[int] = 80,
         protocol: str = "TCP", reason: str = "NETFILTER_DROP", netns: int = DST_NETNS,
         location: str = "nft_do_chain+0x3e8", icmp_type: Optional[int] = None) -> dict[str, Any]:
    return {"time": "2026-01-01T00:00:00.000001Z", "reason": reason, "location": location,
            "protocol": protocol, "src": src, "dst": dst, "sport": sport, "dport": dport,
            "icmp_type": icmp_type, "netns": netns, "ifname": "eth0"}


def evidence(drop_record: dict[str, Any], direction: probe_schema.Direction) -> probe_schema.Evidence:
    items: list[probe_schema.Evidence] = []
    outcome.add_evidence(items, drop_record, direction)
    (item,) = items
    return item


@pytest.mark.parametrize("protocol, result, arrived, expected", [
    ("TCP", outcome.ESTABLISHED, False, "CONNECTED"),
    ("UDP", outcome.REPLY, False, "CONNECTED"),
    ("TCP", outcome.REFUSED, True, "REFUSED"),  # closed port: the destination's own RST
    ("TCP", outcome.REFUSED, False, "REFUSED"),  # a reject with tcp reset on the way
    ("UDP", outcome.REFUSED, True, "DELIVERED"),  # closed port: port unreachable and NO_SOCKET
    ("UDP", outcome.REFUSED, False, "REFUSED"),  # a firewall reject sends the same ICMP
    ("TCP", outcome.UNREACHABLE, False, "REFUSED"),  # admin prohibited, host unreachable
    ("UDP", outcome.TIMEOUT, True, "DELIVERED"),  # silent closed port (ICMP rate-limited)
    ("UDP", outcome.ARRIVAL, True, "DELIVERED"),  # ended early by the NO_SOCKET drop
    ("TCP", outcome.TIMEOUT, True, "DELIVERED"),  # arrived, the answer was lost on the way back
    ("TCP", outcome.TIMEOUT, False, "TIMEOUT"),
    ("UDP", outcome.LOCAL_ERROR, False, "TIMEOUT"),  # EPERM: the source's own firewall
    ("TCP", outcome.FAILED, False, "ERROR"),
    ("UDP", outcome.ABORTED, False, "ABORTED"),
])
def test_outcome_from_socket_result_and_arrival(protocol: str, result: str, arrived: bool,
                                                expected: str) -> None:
    assert outcome.classify(protocol, result, arrived=arrived) == expected


@pytest.mark.parametrize("number, result", [
    (errno.ECONNREFUSED, outcome.REFUSED),
    (errno.EHOSTUNREACH, outcome.UNREACHABLE),  # ICMP host unreachable, admin prohibited (v4)
    (errno.EACCES, outcome.UNREACHABLE),  # ICMPv6 administratively prohibited
    (errno.ENETUNREACH, outcome.UNREACHABLE),
    (errno.ETIMEDOUT, outcome.TIMEOUT),
    (errno.EPERM, outcome.LOCAL_ERROR),
])
def test_socket_errors_map_to_results(number: int, result: str) -> None:
    assert outcome.result_of_error(number) == result
    assert outcome.errno_name(number) == errno.errorcode[number]


def test_only_a_forward_no_socket_outside_the_source_proves_arrival() -> None:
    no_socket = drop(reason="NO_SOCKET", location="tcp_v4_rcv+0x91")
    assert outcome.is_arrival(evidence(no_socket, "forward"), SRC_NETNS)
    assert not outcome.is_arrival(evidence(no_socket, "reply"), SRC_NETNS)  # a late SYN-ACK at the source
    assert not outcome.is_arrival(evidence(drop(reason="NO_SOCKET", netns=SRC_NETNS), "forward"), SRC_NETNS)
    assert not outcome.is_arrival(evidence(drop(), "forward"), SRC_NETNS)  # dropped by a firewall


def test_repeated_drops_fold_into_one_item_with_a_count() -> None:
    items: list[probe_schema.Evidence] = []
    for _ in range(2):  # the SYN and its retransmission
        outcome.add_evidence(items, drop(), "forward")
    outcome.add_evidence(items, drop(reason="NO_SOCKET", location="tcp_v4_rcv+0x91"), "forward")
    outcome.add_evidence(items, drop(), "reply")
    assert [(i["reason"], i["direction"], i["count"]) for i in items] == [
        ("NETFILTER_DROP", "forward", 2), ("NO_SOCKET", "forward", 1), ("NETFILTER_DROP", "reply", 1)]
    assert set(items[0]) == {"reason", "location", "ifname", "netns", "direction", "count", "time"}


def test_drops_match_their_attempt_in_both_directions_only() -> None:
    index: outcome.EvidenceIndex[str] = outcome.EvidenceIndex()
    index.register(("TCP", SRC, 42000, DST, 80), "tcp-attempt")
    index.register(("UDP", SRC, 42001, DST, 53), "udp-attempt")
    assert index.match(drop()) == [("tcp-attempt", "forward")]
    assert index.match(drop(src=DST, dst=SRC, sport=80, dport=42000)) == [("tcp-attempt", "reply")]
    assert index.match(drop(protocol="UDP", sport=42001, dport=53)) == [("udp-attempt", "forward")]
    unrelated = [
        drop(sport=51234),  # the pod's own connection to the same port
        drop(protocol="UDP"),  # same ports, other protocol
        drop(dport=81),
        drop(dst="10.0.0.3"),
        drop(src=DST, dst=SRC, sport=80, dport=42001),  # reverse of a flow that does not exist
        drop(sport=None, dport=None),  # a later fragment
        drop(protocol="ICMP", sport=None, dport=None, icmp_type=8, src=DST, dst=SRC),  # echo: a query
    ]
    assert [index.match(record) for record in unrelated] == [[] for _ in unrelated]


def test_an_icmp_error_back_to_the_source_goes_to_the_open_attempts_of_that_pair() -> None:
    index: outcome.EvidenceIndex[str] = outcome.EvidenceIndex()
    index.register(("UDP", SRC, 42000, DST, 53), "a")
    index.register(("TCP", SRC, 42001, DST, 80), "b")
    index.register(("TCP", SRC, 42002, "10.0.0.9", 80), "elsewhere")
    icmp = drop(protocol="ICMP", src=DST, dst=SRC, sport=None, dport=None, icmp_type=3)
    assert sorted(index.match(icmp)) == [("a", "reply"), ("b", "reply")]
    icmp6 = drop(protocol="ICMPv6", src=DST, dst=SRC, sport=None, dport=None, icmp_type=1)
    assert len(index.match(icmp6)) == 2


def test_a_concluded_attempt_collects_nothing_more() -> None:
    index: outcome.EvidenceIndex[str] = outcome.EvidenceIndex()
    key: outcome.FlowKey = ("TCP", SRC, 42000, DST, 80)
    index.register(key, "a")
    index.unregister(key)
    index.unregister(key)  # idempotent
    assert len(index) == 0
    assert index.match(drop()) == []
    assert index.match(drop(protocol="ICMP", src=DST, dst=SRC, sport=None, dport=None, icmp_type=3)) == []


def test_a_flow_cannot_belong_to_two_open_attempts() -> None:
    index: outcome.EvidenceIndex[str] = outcome.EvidenceIndex()
    index.register(("TCP", SRC, 42000, DST, 80), "a")
    with pytest.raises(ValueError, match="already belongs"):
        index.register(("TCP", SRC, 42000, DST, 80), "b")
