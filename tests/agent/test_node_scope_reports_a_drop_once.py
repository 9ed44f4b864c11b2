"""Two nodes sharing one kernel: a drop is reported by the node it happened on.

Each "node" is a netns with a "pod" netns behind a veth, the nodes linked to
each other, as hack/local-cluster builds them. A packet from node B's pod to
node A's pod is dropped in node B's root netns. Node A's agent traces its pod
by netns and IP, so without scoping the IP alone would make it report B's
drop; scoped to A's netns it must not, while B's node-wide agent does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import pytest

from kubectl_bpf.agent import preflight, targets
from kubectl_bpf.gadgets.drops import node, params
from tests.agent import netlab

pytestmark = pytest.mark.agent

POD_A, POD_B = "10.233.1.2", "10.233.2.2"
PORT, CLOSED, COUNT = 7201, 7202, 3


@pytest.fixture
def nodes(lab: netlab.Lab) -> dict[str, netlab.Netns]:
    found = {role: lab.netns(role) for role in ("node-a", "pod-a", "node-b", "pod-b")}
    lab.link(found["node-a"], ["10.233.0.1/24"], found["node-b"], ["10.233.0.2/24"])
    lab.link(found["node-a"], ["10.233.1.1/24"], found["pod-a"], [f"{POD_A}/24"])
    lab.link(found["node-b"], ["10.233.2.1/24"], found["pod-b"], [f"{POD_B}/24"])
    for name in ("node-a", "node-b"):
        found[name].sysctl("net.ipv4.ip_forward=1")
    found["pod-a"].ip("route", "add", "default", "via", "10.233.1.1")
    found["pod-b"].ip("route", "add", "default", "via", "10.233.2.1")
    found["node-a"].ip("route", "add", "10.233.2.0/24", "via", "10.233.0.2")
    found["node-b"].ip("route", "add", "10.233.1.0/24", "via", "10.233.0.1")
    return found


@pytest.fixture
def gadgets() -> Iterator[list[node.DropsGadget]]:
    started: list[node.DropsGadget] = []
    yield started
    for gadget in started:
        gadget.close()


def attach(gadgets: list[node.DropsGadget], target: targets.HostTarget) -> node.DropsGadget:
    gadget = node.DropsGadget(params.DropsParams())
    facts = preflight.check_host(btf_types=gadget.btf_types, tracepoint=gadget.tracepoint,
                                 reads_kernel_memory=gadget.reads_kernel_memory)
    gadget.attach(target, facts)
    gadgets.append(gadget)
    return gadget


def by_port(gadget: node.DropsGadget) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {PORT: [], CLOSED: []}
    for drop in gadget.detach():
        if drop.get("dport") in found:
            found[drop["dport"]].append(drop)
    return found


def test_a_drop_in_node_b_is_reported_by_b_only(nodes: dict[str, netlab.Netns],
                                                 gadgets: list[node.DropsGadget]) -> None:
    nodes["node-b"].nft_drop("forward", f"ip daddr {POD_A} udp dport {PORT}")
    pod_a = targets.HostTarget(netns=(nodes["pod-a"].inode,), ips=(POD_A,), pids=())
    scope_a = (nodes["node-a"].inode, nodes["pod-a"].inode)
    scope_b = (nodes["node-b"].inode, nodes["pod-b"].inode)
    unscoped_a = attach(gadgets, pod_a)
    scoped_a = attach(gadgets, dataclasses.replace(pod_a, node_netns=scope_a))
    scoped_b = attach(gadgets, targets.HostTarget(netns=(), ips=(), pids=(), node_netns=scope_b))
    nodes["pod-b"].traffic("udp", POD_A, str(PORT), str(COUNT))  # dropped in node B
    nodes["pod-b"].traffic("udp", POD_A, str(CLOSED), str(COUNT))  # dropped in pod A: no socket
    seen_by_b, seen_by_a, unscoped = by_port(scoped_b), by_port(scoped_a), by_port(unscoped_a)
    assert {d["netns"] for d in seen_by_b[PORT]} == {nodes["node-b"].inode}
    assert len(seen_by_b[PORT]) == COUNT and seen_by_b[CLOSED] == []
    assert len(unscoped[PORT]) == COUNT  # the IP fallback alone would report it on A too
    assert seen_by_a[PORT] == []
    assert {d["netns"] for d in seen_by_a[CLOSED]} == {nodes["pod-a"].inode}
    assert len(seen_by_a[CLOSED]) == COUNT
