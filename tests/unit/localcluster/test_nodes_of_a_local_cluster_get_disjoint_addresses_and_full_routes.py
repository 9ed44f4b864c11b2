"""topology: every node of an N-node local cluster owns distinct addresses, and the routes
and CNI config make every pod CIDR reachable from every node without a default route."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from hack.localcluster import topology


def test_one_node_is_the_machine_as_before() -> None:
    (node,) = topology.nodes(1, "vm", "192.0.2.2")
    assert (node.name, node.netns, node.ip, node.pod_cidr, node.gateway) == (
        "vm", None, "192.0.2.2", "10.88.0.0/16", "10.88.0.1")
    assert topology.routes([node], 0) == []
    routes = topology.conflist([node], 1, "/d")["plugins"][0]["ipam"]["routes"]  # type: ignore[index]
    assert [r["dst"] for r in routes] == ["10.96.0.0/16", "192.0.2.2/32"]


@pytest.mark.parametrize("count", [2, 3, 10, 200])
def test_addresses_never_overlap(count: int) -> None:
    plan = topology.nodes(count, "vm", "192.0.2.2")
    assert len({n.name for n in plan}) == len({n.ip for n in plan}) == len({n.netns for n in plan}) == count
    nets = [ipaddress.ip_network(n.pod_cidr) for n in plan]
    nets += [ipaddress.ip_network(topology.SERVICE_CIDR), ipaddress.ip_network(topology.NODE_NET)]
    for a, b in itertools.combinations(nets, 2):
        assert not a.overlaps(b), (a, b)
    roots = [n.cgroup_root for n in plan[1:]]
    assert len(set(roots)) == count - 1 and "/" not in roots


def test_every_node_routes_to_every_other_pod_cidr_through_its_node() -> None:
    plan = topology.nodes(3, "vm", "192.0.2.2")
    assert topology.routes(plan, 2) == [("10.88.0.0/16", "10.89.0.1"), ("10.244.3.0/24", "10.89.0.3"),
                                        ("192.0.2.2/32", "10.89.0.1")]
    assert topology.routes(plan, 0) == [("10.244.2.0/24", "10.89.0.2"), ("10.244.3.0/24", "10.89.0.3")]
    for k in (0, 2, 3):
        assert all(dst != "0.0.0.0/0" for dst, _ in topology.routes(plan, k))


def test_pods_reach_other_nodes_and_services_but_nothing_outside() -> None:
    plan = topology.nodes(3, "vm", "192.0.2.2")
    ipam = topology.conflist(plan, 3, "/var/lib/x/ipam")["plugins"][0]["ipam"]  # type: ignore[index]
    assert ipam["ranges"] == [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}]]
    assert ipam["dataDir"] == "/var/lib/x/ipam"
    dsts = [ipaddress.ip_network(r["dst"]) for r in ipam["routes"]]
    for addr in ("10.88.0.7", "10.244.2.9", "10.96.0.10", "10.89.0.2", "192.0.2.2"):
        assert any(ipaddress.ip_address(addr) in d for d in dsts), addr
    assert not any(ipaddress.ip_address("8.8.8.8") in d for d in dsts)
    assert {r["gw"] for r in ipam["routes"]} == {"10.244.3.1"}


def test_a_node_count_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="--nodes"):
        topology.nodes(0, "vm", "192.0.2.2")
    assert topology.main(["nodes", "0", "vm", "192.0.2.2"]) == 2
