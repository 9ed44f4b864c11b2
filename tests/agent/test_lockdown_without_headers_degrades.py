"""Under lockdown=confidentiality on a kernel without bpf_rdonly_cast (< 6.2)
the agent loads handle_kfree_skb_locked_bare: it still runs and reports every
drop with what the kernel allows (netns, interface, length, reason, location,
exact counts), says in preflight what it cannot do, and an IP filter matches
nothing. Forced here with KUBECTL_BPF_DROPS_PROGRAM, so every kernel tests it."""

from __future__ import annotations

import pytest

from kubectl_bpf.gadgets.drops import modes, node
from tests.agent import kernel
from tests.agent.conftest import TARGET_V4

pytestmark = pytest.mark.agent


@pytest.fixture(autouse=True)
def bare(monkeypatch):
    monkeypatch.setenv(node.PROGRAM_ENV, node.LOCKED_BARE.program)


def test_drops_of_the_target_netns_are_reported_without_endpoints(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path, "--reason", "NO_SOCKET")
    client.traffic("udp", TARGET_V4, "7301", "3")
    tracer.settle()
    assert tracer.stop() == 0
    drops = tracer.drops()
    assert len(drops) == 3
    for drop in drops:
        assert drop["netns"] == target.inode
        assert drop["reason"] == "NO_SOCKET"
        assert drop["reason_source"] == kernel.running().reason_source
        assert drop["location"].startswith("__udp4_lib_rcv+0x")
        assert drop["ifname"] and drop["ifindex"] > 0 and drop["len_bytes"] > 0
        assert (drop["src"], drop["dst"], drop["sport"], drop["dport"]) == (None, None, None, None)
        assert drop["protocol"] == "other"
    assert tracer.summary["reasons"] == {"NO_SOCKET": 3}
    assert tracer.summary["drops"] == tracer.summary["events"] == 3


def test_preflight_says_in_one_line_what_cannot_be_done(pair, trace):
    _, target = pair
    tracer = trace("--netns", target.path)
    preflight = tracer.records[0]
    assert preflight["hook"] == node.LOCKED_BARE.hook
    assert preflight["mode"]["reads"] == modes.READS_BARE and preflight["mode"]["headers"] is False
    assert modes.LOCKDOWN_LINE in preflight["mode"]["degraded"]
    tracer.stop()
    assert tracer.summary["mode"] == preflight["mode"]


def test_an_ip_target_matches_nothing_but_the_agent_still_runs(pair, trace):
    client, _ = pair
    tracer = trace("--ip", TARGET_V4)
    client.traffic("udp", TARGET_V4, "7302", "3")
    tracer.settle()
    assert tracer.stop() == 0
    assert tracer.drops() == [] and tracer.summary["drops"] == 0
    assert tracer.records[-1]["status"] == "ok"
