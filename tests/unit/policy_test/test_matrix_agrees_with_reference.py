"""The indexed matrix gives exactly the reference evaluator's verdicts, on random clusters.

The clusters are small and dense on purpose: few labels and addresses, so selectors,
named ports, ranges, ipBlocks, dual-stack and hostNetwork pods collide often.
Seeded, so a failure reproduces.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kubectl_bpf.gadgets.policy_test import evaluate, inventory

CONTAINER_PORTS = [("http", 80, "TCP"), ("http", 8080, "TCP"), ("dns", 53, "UDP"), ("alt", 80, "UDP"),
                   ("assoc", 9, "SCTP"), ("web", 8080, "TCP")]
TRAFFIC = [evaluate.Traffic(80, "TCP"), evaluate.Traffic(8080, "TCP"), evaluate.Traffic(53, "UDP"),
           evaluate.Traffic(80, "UDP"), evaluate.Traffic(9, "SCTP"), evaluate.Traffic(85, "TCP"),
           evaluate.Traffic(None, "TCP"), evaluate.Traffic(None, "UDP")]


def random_selector(rng: random.Random, keys: list[str]) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if rng.random() < 0.5:
        selector["matchLabels"] = {rng.choice(keys): rng.choice(["1", "2"])}
    if rng.random() < 0.5:
        operator = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        requirement: dict[str, Any] = {"key": rng.choice(keys), "operator": operator}
        if operator in ("In", "NotIn"):
            requirement["values"] = rng.sample(["1", "2", "3"], rng.randint(1, 2))
        selector["matchExpressions"] = [requirement]
    return selector


def random_peer(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(4)
    if kind == 0:
        cidr = rng.choice(["10.0.0.0/23", "10.0.1.0/24", "fd00::/64", "10.0.0.4/30"])
        block: dict[str, Any] = {"cidr": cidr}
        if cidr == "10.0.0.0/23" and rng.random() < 0.5:
            block["except"] = ["10.0.1.0/25"]
        if cidr == "fd00::/64" and rng.random() < 0.5:
            block["except"] = ["fd00::/126"]
        return {"ipBlock": block}
    peer: dict[str, Any] = {}
    if kind in (1, 3):
        peer["podSelector"] = random_selector(rng, ["a", "b"])
    if kind in (2, 3):
        peer["namespaceSelector"] = random_selector(rng, ["team", "kubernetes.io/metadata.name"])
    return peer


def random_port(rng: random.Random) -> dict[str, Any]:
    port: dict[str, Any] = {}
    if rng.random() < 0.7:
        port["protocol"] = rng.choice(["TCP", "UDP", "SCTP"])
    choice = rng.randrange(4)
    if choice == 1:
        port["port"] = rng.choice([53, 80, 8080, 9])
    elif choice == 2:
        port["port"], port["endPort"] = rng.choice([(80, 85), (9, 80), (8000, 8080)])
    elif choice == 3:
        port["port"] = rng.choice(["http", "dns", "alt", "assoc", "web"])
    return port


def random_rules(rng: random.Random, peers_field: str) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(0, 2)):
        rule: dict[str, Any] = {}
        if rng.random() < 0.7:
            rule[peers_field] = [random_peer(rng) for _ in range(rng.randint(0, 2))]
        if rng.random() < 0.6:
            rule["ports"] = [random_port(rng) for _ in range(rng.randint(0, 2))]
        rules.append(rule)
    return rules


def random_cluster(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    objects: list[dict[str, Any]] = []
    for name in ("n0", "n1", "n2"):
        labels = {"team": rng.choice(["1", "2"])} if rng.random() < 0.7 else {}
        objects.append({"kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    for index in range(rng.randint(10, 18)):
        labels = {key: rng.choice(["1", "2", "3"]) for key in ("a", "b") if rng.random() < 0.6}
        ports, names = [], set()
        for name, number, protocol in rng.sample(CONTAINER_PORTS, rng.randint(0, 3)):
            if name not in names:
                names.add(name)
                ports.append({"name": name, "containerPort": number, "protocol": protocol})
        status: dict[str, Any] = {}
        family = rng.random()
        if family < 0.6:
            status["podIP"] = f"10.0.{index % 2}.{index}"
        elif family < 0.8:
            status["podIPs"] = [{"ip": f"fd00::{index}"}, {"ip": f"10.0.{index % 2}.{index}"}]
        objects.append({"kind": "Pod",
                        "metadata": {"name": f"p{index}", "namespace": rng.choice(["n0", "n1", "n2"]),
                                     "labels": labels},
                        "spec": {"hostNetwork": rng.random() < 0.07, "containers": [{"ports": ports}]},
                        "status": status})
    for index in range(rng.randint(4, 10)):
        spec: dict[str, Any] = {"podSelector": random_selector(rng, ["a", "b"])}
        if rng.random() < 0.5:
            spec["policyTypes"] = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        if rng.random() < 0.8:
            spec["ingress"] = random_rules(rng, "from")
        if rng.random() < 0.6:
            spec["egress"] = random_rules(rng, "to")
        objects.append({"kind": "NetworkPolicy",
                        "metadata": {"name": f"np{index}", "namespace": rng.choice(["n0", "n1", "n2"])},
                        "spec": spec})
    return objects


@pytest.mark.parametrize("seed", range(40))
def test_matrix_equals_reference_on_every_pair_and_port(seed: int) -> None:
    inv = inventory.parse_objects(random_cluster(seed))
    index = evaluate.PolicyIndex(inv)
    for traffic in TRAFFIC:
        matrix = list(evaluate.evaluate_matrix(index, sources=inv.pods, destinations=inv.pods,
                                               traffic=traffic))
        assert len(matrix) == len(inv.pods) ** 2
        for source, destination, verdict in matrix:
            reference = evaluate.evaluate_pair(inv, source=source, destination=destination, traffic=traffic)
            assert verdict == reference, f"seed {seed}, {traffic}: {source.key} -> {destination.key}"


def test_random_clusters_exercise_every_outcome() -> None:
    """Guards the test above against a generator that stopped producing interesting cases."""
    seen: set[tuple[str, bool]] = set()
    for seed in range(40):
        inv = inventory.parse_objects(random_cluster(seed))
        index = evaluate.PolicyIndex(inv)
        for traffic in TRAFFIC:
            for _, _, verdict in evaluate.evaluate_matrix(index, sources=inv.pods, destinations=inv.pods,
                                                          traffic=traffic):
                seen.add((verdict.expected, verdict.cni_dependent))
    assert seen == {("allow", False), ("allow", True), ("deny", False), ("undefined", False)}
