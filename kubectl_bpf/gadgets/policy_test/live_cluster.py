"""Live policy-test, cluster half: the inventory read from the API, and one probe
session (a tracer Job per source node) whose ``probe`` records come back here.

The inventory is the same one ``--offline`` builds from YAML: namespaces, pods and
networking.k8s.io/v1 NetworkPolicies are read as raw JSON (what ``kubectl get -o
json`` prints, paged) and parsed by ``inventory.parse_objects``, so the live and the
offline modes evaluate identical objects. The host facts a probe needs (node,
running container IDs) come from the same pod listing: nothing is read twice.

The API calls themselves are in ``kube/listing.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.gadgets.policy_test import inventory, live_plan
from kubectl_bpf.kube import client, errors, listing, session, settings, targets
from kubectl_bpf.protocol import records, spec

STATS_INTERVAL_S = 5.0  # the agents' heartbeat: a silent stream is broken after twice this
GADGET = "probe"
TRACER = "drops"  # on a destination node: the drops of the probe flows that reach it
# Few events (the probes' drops, the destination pods' others): a small ring, and a
# wakeup per event so that evidence is never held back in it.
TRACER_PARAMS = drops_params.DropsParams(ring_bytes=1 << 20, wakeup_bytes=0).to_dict()


@dataclasses.dataclass(frozen=True)
class ClusterInventory:
    inventory: inventory.Inventory
    hosts: dict[str, targets.PodTarget]  # "ns/pod" -> node, IPs, running container IDs


def read_inventory(kube: client.Kube) -> ClusterInventory:
    """Every namespace, pod and NetworkPolicy of the cluster (policies anywhere can
    select peers anywhere, so nothing less is exact)."""
    namespaces, pods, policies = listing.namespaces_pods_and_policies(kube)
    try:
        inv = inventory.parse_objects([
            {"kind": "NamespaceList", "items": namespaces},
            {"kind": "PodList", "items": pods},
            {"kind": "NetworkPolicyList", "items": [
                {**item, "apiVersion": inventory.POLICY_API_VERSION} for item in policies]},
        ])
    except inventory.InventoryError as exc:
        raise errors.KubeError(f"the cluster's objects cannot be evaluated: {exc}") from exc
    hosts = {target.ref: target for target in map(targets.pod_target_from_json, pods)}
    return ClusterInventory(inv, hosts)


def unprobeable(host: targets.PodTarget | None) -> str | None:
    """Why a pod cannot be a probe source, as the end of a sentence; None if it can."""
    if host is None:
        return "is not in the cluster"
    if host.phase != "Running":
        return f"is {host.phase}"
    if not host.node:
        return "is not scheduled on a node"
    if not host.container_ids:
        return "has no running container (its netns cannot be entered)"
    return None


@dataclasses.dataclass
class Collected:
    """What the session brought back: probe records by id, and per node the pods'
    netns inodes (from each agent's preflight) for naming where a drop happened."""

    attempts: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    netns_names: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    # (node, drop record) from the destination nodes' tracers, for live_plan.add_destination_evidence
    destination_drops: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class NodePlan:
    group: targets.NodeGroup  # the pods on the node: sources, and destinations to name
    params: dict[str, Any]  # ProbeParams.to_dict(), or the tracer's DropsParams
    attempts: int
    gadget: str = GADGET  # TRACER: a destination node's drops tracer (the group: its destination pods)


def plan_nodes(probes: Sequence[live_plan.PlannedProbe], hosts: Mapping[str, targets.PodTarget], *,
               attempts: int, timeout_s: float, rate_per_s: float) -> tuple[list[NodePlan], float]:
    """One NodePlan per source node (its probes, and its pods as the agent's target so
    the preflight names their netns), and the longest node's time bound."""
    by_node: dict[str, list[live_plan.PlannedProbe]] = {}
    for probe in probes:
        if probe.skip is None:
            by_node.setdefault(hosts[probe.source.key].node, []).append(probe)
    container_of = {key: host.container_ids[0] for key, host in hosts.items() if host.container_ids}
    plans: list[NodePlan] = []
    bound = 0.0
    for node, node_probes in sorted(by_node.items()):
        params = live_plan.build_params(node_probes, container_of=container_of, attempts=attempts,
                                        timeout_s=timeout_s, rate_per_s=rate_per_s)
        bound = max(bound, live_plan.run_bound_s(params))
        pods = tuple(sorted((host for host in hosts.values()
                             if host.node == node and host.container_ids and host.phase == "Running"
                             and not host.host_network
                             and (host.ref in {p.source.key for p in node_probes}
                                  or host.ref in {p.destination.key for p in node_probes})),
                            key=lambda host: host.ref))
        plans.append(NodePlan(targets.NodeGroup(node=node, pods=pods), params.to_dict(),
                              params.total_attempts))
    return plans + destination_tracers(probes, hosts), bound


def destination_tracers(probes: Sequence[live_plan.PlannedProbe],
                        hosts: Mapping[str, targets.PodTarget]) -> list[NodePlan]:
    """A drops tracer on every node a probe crosses to, targeting the destination pods
    there: the source's agent sees only its own node, so without it a deny at the
    destination's node would be "no drop seen"."""
    by_node: dict[str, set[str]] = {}
    for probe in probes:
        destination = probe.destination.pod
        source = hosts.get(probe.source.key)
        host = hosts.get(destination.key) if destination is not None else None
        if probe.skip is not None or source is None or host is None or not host.node:
            continue
        if host.node != source.node and host.container_ids and not host.host_network:
            by_node.setdefault(host.node, set()).add(host.ref)
    return [NodePlan(targets.NodeGroup(node=node, pods=tuple(hosts[ref] for ref in sorted(refs))),
                     TRACER_PARAMS, 0, gadget=TRACER) for node, refs in sorted(by_node.items())]


def run_probes(kube: client.Kube, plans: Sequence[NodePlan], *, options: settings.SessionOptions,
               duration_s: float, command: str, on_progress: Callable[[str], None],
               run: Callable[..., int]) -> tuple[Collected, int]:
    """One session for every node; ``run`` is cli.live.run_session (signals, deadlines).
    Returns what came back and the session's exit code."""
    base = spec.RunSpec(gadget=GADGET, duration_s=duration_s, stats_interval_s=STATS_INTERVAL_S)
    probe_nodes = {plan.group.node for plan in plans if plan.gadget == GADGET}
    tracing = any(plan.gadget == TRACER for plan in plans)

    def spec_for(group: targets.NodeGroup) -> spec.RunSpec:
        plan = next(plan for plan in plans if plan.group is group)  # a node may have a tracer too
        if plan.gadget == TRACER:  # until every probe ended (stopped below), at most the probes' bound
            return dataclasses.replace(base, gadget=TRACER, target=targets.target_spec(group),
                                       params=plan.params)
        return dataclasses.replace(base, target=targets.target_spec(group), count=plan.attempts,
                                   params=plan.params)

    live_session = session.Session(kube, gadget=GADGET, run_spec=base,
                                   groups=[plan.group for plan in plans], options=options, command=command,
                                   on_progress=on_progress, spec_for=spec_for)
    collected = Collected()
    container_pod = {container: pod.ref for plan in plans for pod in plan.group.pods
                     for container in pod.container_ids}

    probes_ended: set[str] = set()

    def on_record(node: str, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "probe":
            collected.attempts.setdefault(str(record.get("id")), []).append(record)
        elif kind == "drop":
            collected.destination_drops.append((node, record))
        elif kind == records.PREFLIGHT:
            containers = (record.get("target") or {}).get("containers") or {}
            names = collected.netns_names.setdefault(node, {})
            for container, inode in containers.items():
                if container in container_pod:
                    names[int(inode)] = container_pod[container]
        elif kind == records.SUMMARY and "attempts_planned" in record:  # a probe agent's
            collected.summaries[node] = record
            probes_ended.add(node)
            if tracing and probes_ended >= probe_nodes:  # the tracers have seen every probe: stop them
                live_session.stop()
        elif kind == records.ERROR:
            collected.errors.append(f"{node}: {record.get('message')}")

    code = run(live_session, on_record=on_record, max_wait_s=duration_s + options.start_timeout_s + 60)
    return collected, code


def select_pod_keys(kube: client.Kube, namespace: str, selector: str) -> set[str]:
    """The "ns/pod" keys of the pods a label selector matches (the API parses it)."""
    items = listing.pods_matching(kube, namespace, selector)
    return {f"{namespace}/{item['metadata']['name']}" for item in items}
