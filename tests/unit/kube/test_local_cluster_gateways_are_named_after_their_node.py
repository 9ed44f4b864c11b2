"""The local cluster's nodes, as `hack/local-cluster up --nodes N` records them (InternalIP
from the topology, spec.podCIDR set by its set_pod_cidr), are named by the client: each node's
IP and its pod bridge's gateway (the source of its kubelet's probes) read as node/NAME, so a
probe's drop shows the node in PEER, not a bare 10.88.0.1."""

from __future__ import annotations

from hack.localcluster import topology
from kubectl_bpf.kube import client, targets

from .conftest import FakeCluster, node_json, pod_json


def test_every_local_node_ip_and_gateway_names_that_node(kube: client.Kube, cluster: FakeCluster) -> None:
    plan = topology.nodes(3, "vm", "192.0.2.2")
    for node in plan:
        obj = node_json(node.name)
        obj["spec"] = {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}
        obj["status"]["addresses"] = [{"type": "InternalIP", "address": node.ip},
                                      {"type": "Hostname", "address": node.name}]
        cluster.add_node(obj)
    cluster.add_pod(pod_json("web", ips=("10.244.2.7",)))
    names = targets.address_names(kube)
    assert {a: names[a] for a in ("10.88.0.1", "10.244.2.1", "10.244.3.1")} == {
        "10.88.0.1": "node/vm", "10.244.2.1": "node/vm-node2", "10.244.3.1": "node/vm-node3"}
    assert {names[n.ip] for n in plan} == {"node/vm", "node/vm-node2", "node/vm-node3"}
    assert names["10.244.2.7"] == "shop/web"  # a pod of that CIDR keeps its own name
