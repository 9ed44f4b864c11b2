"""Benchmark the NetworkPolicy evaluator on a generated 1,000-pod, 200-policy cluster.

Issue 5's target: the full 1,000 x 1,000 matrix for one port in under 10 s on a
2-core machine. Times the index build plus ``evaluate_matrix`` over every ordered pair,
then the naive baseline (``evaluate_pair``, which re-reads every selector per pair)
on a sample of sources, checks both agree on that sample, and prints the ratio.
The cluster is seeded, so runs are comparable. Run from the repository root:

    python -m bench.policy_eval [--pods 1000] [--policies 200] [--naive-sources 20]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from typing import Any

from kubectl_bpf.gadgets.policy_test import evaluate, inventory

NAMESPACES = 20
APPS = {  # app -> container ports (name, number, protocol), as typical workloads declare them
    "web": [("http", 8080, "TCP")],
    "frontend": [("http", 8080, "TCP"), ("metrics", 9100, "TCP")],
    "api": [("http", 8080, "TCP"), ("grpc", 9090, "TCP"), ("metrics", 9100, "TCP")],
    "auth": [("http", 8443, "TCP")],
    "db": [("postgres", 5432, "TCP"), ("metrics", 9100, "TCP")],
    "cache": [("redis", 6379, "TCP")],
    "queue": [("amqp", 5672, "TCP"), ("http", 15672, "TCP")],
    "worker": [],
    "dns": [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
    "metrics": [("http", 9090, "TCP")],
}
TIERS = ("frontend", "backend", "data")
TEAMS = ("payments", "search", "identity", "platform", "growth")
ENVS = ("prod", "staging", "dev")


def generate_cluster(*, pods: int, policies: int, seed: int) -> list[dict[str, Any]]:
    """Kubernetes objects as ``kubectl get -o yaml`` would list them, parsed."""
    rng = random.Random(seed)
    objects: list[dict[str, Any]] = []
    namespaces = [f"ns-{index:02d}" for index in range(NAMESPACES)]
    for index, name in enumerate(namespaces):
        labels = {"team": TEAMS[index % len(TEAMS)], "env": ENVS[index % len(ENVS)]}
        if index % 4 == 0:
            labels["monitoring"] = "enabled"
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name, "labels": labels}})
    for index in range(pods):
        namespace = namespaces[index % NAMESPACES]
        app = rng.choice(list(APPS))
        labels = {"app": app, "version": rng.choice(("v1", "v2", "v3"))}
        if rng.random() < 0.8:  # the rest lack the label: NotIn and DoesNotExist must still match them
            labels["tier"] = rng.choice(TIERS)
        ports = [{"name": name, "containerPort": number, "protocol": protocol}
                 for name, number, protocol in APPS[app]]
        objects.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-{index:04d}", "namespace": namespace, "labels": labels},
            "spec": {"nodeName": f"node-{index % 8}", "hostNetwork": rng.random() < 0.01,
                     "containers": [{"name": app, "ports": ports}]},
            "status": {"phase": "Running", "podIP": f"10.244.{index // 250}.{index % 250 + 1}",
                       "podIPs": [{"ip": f"10.244.{index // 250}.{index % 250 + 1}"}]},
        })
    makers = [_default_deny_ingress, _default_deny_egress, _allow_same_app, _allow_team_namespaces,
              _allow_db_from_backend, _allow_egress_dns_and_cidr, _allow_monitoring, _allow_by_expressions]
    for index in range(policies):
        namespace = namespaces[index % NAMESPACES]
        spec = makers[rng.randrange(len(makers))](rng)
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"policy-{index:03d}", "namespace": namespace}, "spec": spec})
    return objects


def _default_deny_ingress(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {}, "policyTypes": ["Ingress"]}


def _default_deny_egress(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}}, "policyTypes": ["Egress"]}


def _allow_same_app(rng: random.Random) -> dict[str, Any]:
    app = rng.choice(list(APPS))
    return {"podSelector": {"matchLabels": {"app": app}},
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": [app, "frontend", "web"]}]}}],
                "ports": [{"port": "http"}, {"port": 9090}]}]}


def _allow_team_namespaces(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": rng.choice(TEAMS)}},
                                   "podSelector": {"matchExpressions": [
                                       {"key": "tier", "operator": "NotIn", "values": ["data"]}]}}]}]}


def _allow_db_from_backend(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "backend"}}},
                                  {"namespaceSelector": {"matchLabels": {"env": rng.choice(ENVS)}}}],
                         "ports": [{"port": 5432}, {"port": "metrics"}]}]}


def _allow_egress_dns_and_cidr(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns-00"}},
                         "podSelector": {"matchLabels": {"app": "dns"}}}],
                 "ports": [{"port": 53, "protocol": "UDP"}, {"port": "dns-tcp"}]},
                {"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                     "except": [f"10.244.{rng.randrange(4)}.0/24"]}}],
                 "ports": [{"port": 8000, "endPort": 8100}, {"port": 443}]},
                {"to": [{"podSelector": {}}]}]}


def _allow_monitoring(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"monitoring": "enabled"}},
                                   "podSelector": {"matchLabels": {"app": "metrics"}}}],
                         "ports": [{"port": "metrics"}]}]}


def _allow_by_expressions(rng: random.Random) -> dict[str, Any]:
    return {"podSelector": {"matchExpressions": [
                {"key": "version", "operator": "NotIn", "values": [rng.choice(("v1", "v2"))]},
                {"key": "tier", "operator": "DoesNotExist"}]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]}]}}]}],
            "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 8080}, {"protocol": "UDP"}]}]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--port", type=int, default=8080, help="TCP port of the matrix")
    parser.add_argument("--naive-sources", type=int, default=20,
                        help="sources (x every destination) for the naive baseline; 0 skips it")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    inv = inventory.parse_objects(generate_cluster(pods=args.pods, policies=args.policies, seed=args.seed))
    traffic = evaluate.Traffic(args.port, "TCP")
    pods = inv.pods
    print(f"cluster: {len(pods)} pods in {len(inv.namespaces)} namespaces, {len(inv.policies)} policies, "
          f"{sum(len(p.ingress) + len(p.egress) for p in inv.policies)} rules; port {traffic}")

    started = time.perf_counter()
    index = evaluate.PolicyIndex(inv)
    indexed = time.perf_counter()
    counts: collections.Counter[str] = collections.Counter()
    fast: dict[tuple[int, int], evaluate.Verdict] = {}
    sample = set(range(min(args.naive_sources, len(pods))))
    for source, destination, verdict in evaluate.evaluate_matrix(
            index, sources=pods, destinations=pods, traffic=traffic):
        counts[verdict.expected] += 1
        row = index.position[source]
        if row in sample:
            fast[row, index.position[destination]] = verdict
    finished = time.perf_counter()
    pairs = len(pods) * len(pods)
    wall = finished - started
    print(f"fast:  index {indexed - started:.3f} s + matrix {finished - indexed:.3f} s = {wall:.3f} s "
          f"for {pairs:,} pairs -> {pairs / wall:,.0f} pairs/s "
          f"({', '.join(f'{name} {count:,}' for name, count in sorted(counts.items()))})")

    if not sample:
        return 0
    started = time.perf_counter()
    mismatches = 0
    for row in sorted(sample):
        for column, destination in enumerate(pods):
            verdict = evaluate.evaluate_pair(inv, source=pods[row], destination=destination, traffic=traffic)
            mismatches += verdict != fast[row, column]
    naive_wall = time.perf_counter() - started
    naive_pairs = len(sample) * len(pods)
    naive_rate = naive_pairs / naive_wall
    print(f"naive: {naive_pairs:,} pairs in {naive_wall:.3f} s -> {naive_rate:,.0f} pairs/s "
          f"(full matrix extrapolated: {pairs / naive_rate:.1f} s)")
    print(f"speed-up: {(pairs / wall) / naive_rate:.1f}x; verdicts that differ on the sample: {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
