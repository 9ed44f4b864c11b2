"""Real drops provoked in namespaces the tests create, decoded end to end."""

from __future__ import annotations

import pytest

from tests.agent import kernel
from tests.agent.conftest import CLIENT_V4, CLIENT_V6, TARGET_V4, TARGET_V6

pytestmark = pytest.mark.agent


def test_nftables_drop_in_target_netns_is_netfilter_drop_in_netfilter(pair, trace):
    client, target = pair
    target.nft_drop("input", "udp dport 7777")
    tracer = trace("--netns", target.path)
    client.traffic("udp", TARGET_V4, "7777", "5")
    tracer.settle()
    assert tracer.stop() == 0
    drops = tracer.drops(dport=7777)
    assert len(drops) == 5
    for drop in drops:
        assert drop["reason"] == "NETFILTER_DROP"
        assert drop["location"].startswith(kernel.NETFILTER_FUNCTIONS)
        assert (drop["protocol"], drop["src"], drop["dst"]) == ("UDP", CLIENT_V4, TARGET_V4)
        assert drop["direction"] == "ingress"
        assert drop["netns"] == target.inode
        assert drop["ifname"] and drop["ifname"].endswith("b")
    assert tracer.summary["reasons"]["NETFILTER_DROP"] >= 5


def test_closed_udp_port_is_no_socket_in_udp_receive(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path, "--reason", "NO_SOCKET")
    client.traffic("udp", TARGET_V4, "7001", "3")
    tracer.settle()
    tracer.stop()
    drops = tracer.drops(dport=7001)
    assert len(drops) == 3
    assert {d["location"].split("+")[0] for d in drops} == {"__udp4_lib_rcv"}
    assert all(d["reason"] == "NO_SOCKET" and d["reason_code"] > 0 for d in drops)
    assert all(isinstance(d["sport"], int) and d["sport"] > 0 for d in drops)


def test_closed_tcp_port_is_no_socket_in_tcp_receive(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path)
    assert client.traffic("tcp", TARGET_V4, "7002").strip() == "refused"
    tracer.settle()
    tracer.stop()
    (drop,) = tracer.drops(dport=7002)
    assert (drop["protocol"], drop["reason"], drop["direction"]) == ("TCP", "NO_SOCKET", "ingress")
    assert drop["location"].startswith("tcp_v4_rcv+0x")


def test_ipv6_drops_carry_ipv6_endpoints(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path)
    client.traffic("udp", TARGET_V6, "7003", "2")
    tracer.settle()
    tracer.stop()
    drops = tracer.drops(dport=7003)
    assert len(drops) == 2
    assert all((d["src"], d["dst"]) == (CLIENT_V6, TARGET_V6) for d in drops)
    assert all(d["location"].startswith("__udp6_lib_rcv+0x") for d in drops)


def test_egress_drop_in_target_is_egress(pair, trace):
    _, target = pair
    target.nft_drop("output", "udp dport 7004")
    tracer = trace("--netns", target.path)
    target.traffic("udp", CLIENT_V4, "7004", "2")
    tracer.settle()
    tracer.stop()
    drops = tracer.drops(dport=7004)
    assert len(drops) == 2
    assert all(d["direction"] == "egress" and d["reason"] == "NETFILTER_DROP" for d in drops)
    assert all((d["src"], d["dst"]) == (TARGET_V4, CLIENT_V4) for d in drops)


def test_icmp_drop_shows_type_and_code_without_ports(pair, trace):
    client, target = pair
    target.nft_drop("input", "icmp type echo-request")
    tracer = trace("--netns", target.path)
    client.traffic("icmp", TARGET_V4, "0", "2")
    tracer.settle()
    tracer.stop()
    icmp = [d for d in tracer.drops() if d["protocol"] == "ICMP"]
    assert len(icmp) == 2
    assert all((d["icmp_type"], d["icmp_code"], d["sport"], d["dport"]) == (8, 0, None, None)
               for d in icmp)
