"""Live policy-test, the steps between the command and the cluster: resolve what the
user named against the inventory, plan the probes, judge what came back.

Pure apart from what ``live_cluster`` does for it; errors are ``LiveError`` with an
exit code, for the command to print in one line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Collection, Mapping, Sequence

from kubectl_bpf.gadgets.policy_test import (
    evaluate,
    inventory,
    live_cluster,
    live_plan,
    queries,
    schema,
    spec_file,
)
from kubectl_bpf.kube import targets
from kubectl_bpf.protocol import exitcodes


class LiveError(Exception):
    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class Plan:
    probes: tuple[live_plan.PlannedProbe, ...]
    warnings: tuple[str, ...] = ()


DOTTED = re.compile(r"^\d+(\.\d+){3}$")  # looks like an IPv4 address, valid or not


def split_ref(text: str, default_namespace: str) -> str:
    """``ns/pod`` or ``pod`` (in the default namespace) -> ``ns/pod``."""
    text = text.strip()
    if text.startswith("pod/") or text.startswith("pods/"):
        text = text.split("/", 1)[1]
    namespace, _, name = text.rpartition("/")
    if not name or "/" in namespace:
        raise LiveError(f"bad pod reference {text!r}: expected NAMESPACE/POD or POD",
                        exit_code=exitcodes.USAGE)
    return f"{namespace or default_namespace}/{name}"


def find_pod(inv: inventory.Inventory, key: str) -> inventory.Pod:
    for pod in inv.pods:
        if pod.key == key:
            return pod
    namespace = key.partition("/")[0]
    if namespace not in inv.namespaces:
        raise LiveError(f"namespace {namespace!r} not found", exit_code=exitcodes.NOT_FOUND)
    raise LiveError(f"pod {key} not found", exit_code=exitcodes.NOT_FOUND)


def check_source(cluster: live_cluster.ClusterInventory, pod: inventory.Pod) -> None:
    problem = live_cluster.unprobeable(cluster.hosts.get(pod.key))
    if problem is not None:
        raise LiveError(f"cannot probe from {pod.key}: it {problem}", exit_code=exitcodes.TARGET_STATE)


def check_destination(pod: inventory.Pod) -> None:
    """A pod named by --to must be able to answer, as --from must be able to
    send: a finished pod or one without an IP is TARGET_STATE, not a quiet
    UNDEFINED with exit 0."""
    if pod.phase in inventory.FINISHED_PHASES:
        raise LiveError(f"cannot probe {pod.key}: it is {pod.phase}", exit_code=exitcodes.TARGET_STATE)
    if not pod.ips:
        raise LiveError(f"cannot probe {pod.key}: it has no IP address yet", exit_code=exitcodes.TARGET_STATE)


def plan_pair(cluster: live_cluster.ClusterInventory, *, source_ref: str, destination_ref: str,
              default_namespace: str, specs: Sequence[queries.PortSpec],
              declared: schema.Expected | None = None, name: str | None = None,
              first_number: int = 0) -> list[live_plan.PlannedProbe]:
    """``--from ns/pod --to ns/pod|IP``: one probe per port. An address that is some
    pod's primary IP is that pod (its policies apply); any other is external."""
    inv = cluster.inventory
    source = find_pod(inv, split_ref(source_ref, default_namespace))
    check_source(cluster, source)
    if not specs:
        raise LiveError("--port is required with --to", exit_code=exitcodes.USAGE)
    try:
        address = str(ipaddress.ip_address(destination_ref.strip()))
    except ValueError:
        address = None
    destination: inventory.Pod | None
    if address is not None:
        destination = next((pod for pod in inv.pods if not pod.host_network and pod.phase not in
                            inventory.FINISHED_PHASES and pod.ips and str(pod.ips[0]) == address), None)
        if destination is None:
            _check_ports(specs, None)
            return live_plan.plan_external(inv, source=source, address=address, specs=specs,
                                           first_number=first_number, declared=declared, name=name)
    else:
        key = split_ref(destination_ref, default_namespace)
        try:
            destination = find_pod(inv, key)
        except LiveError as exc:
            if DOTTED.match(destination_ref.strip()):  # 999.1.1.1: meant as an address
                raise LiveError(f"--to {destination_ref.strip()} is not a valid IP address (nor pod {key})",
                                exit_code=exitcodes.USAGE) from exc
            raise
        check_destination(destination)
    _check_ports(specs, (destination,))
    index = evaluate.PolicyIndex(inv)
    cells = [cell for group in queries.evaluate_groups(index, pods=(source, destination), specs=specs)
             for cell in group.cells if cell.source is source and cell.destination is destination]
    return live_plan.plan_cells(cells, first_number=first_number, declared=declared, name=name)


def _check_ports(specs: Sequence[queries.PortSpec], destinations: Sequence[inventory.Pod] | None) -> None:
    try:
        queries.check_named_ports(specs, destinations)
    except queries.PortSpecError as exc:
        raise LiveError(str(exc), exit_code=exitcodes.USAGE) from exc


def plan_matrix(cluster: live_cluster.ClusterInventory, *, namespace: str, keys: Collection[str] | None,
                specs: Sequence[queries.PortSpec]) -> Plan:
    """Every ordered pair of the namespace's running pods (or those in ``keys``), per
    port; pods that cannot be a source are still destinations, with a warning."""
    inv = cluster.inventory
    try:
        pods = queries.select_pods(inv, namespace)
    except queries.NamespaceNotFoundError as exc:
        raise LiveError(f"namespace {namespace!r} not found", exit_code=exitcodes.NOT_FOUND) from exc
    if keys is not None:
        pods = tuple(pod for pod in pods if pod.key in keys)
    if not pods:
        raise LiveError(f"no running pods to probe in namespace {namespace!r}", exit_code=exitcodes.NOT_FOUND)
    _check_ports(specs, pods)
    warnings = []
    skipped_sources: dict[str, str] = {}
    for pod in pods:
        problem = live_cluster.unprobeable(cluster.hosts.get(pod.key))
        if problem is not None:
            skipped_sources[pod.key] = problem
            warnings.append(f"{pod.key} {problem}: not probed from")
    index = evaluate.PolicyIndex(inv)
    cells = [cell for group in queries.evaluate_groups(index, pods=pods, specs=specs) for cell in group.cells]
    probes = live_plan.plan_cells(cells)
    probes = [dataclasses.replace(probe, skip=f"the source {skipped_sources[probe.source.key]}")
              if probe.skip is None and probe.source.key in skipped_sources else probe for probe in probes]
    return Plan(tuple(probes), tuple(warnings))


def judge(probes: Sequence[live_plan.PlannedProbe], collected: live_cluster.Collected,
          hosts: Mapping[str, targets.PodTarget], *, attempts: int) -> list[live_plan.Result]:
    source_nodes = {probe.id: host.node if (host := hosts.get(probe.source.key)) is not None else None
                    for probe in probes}
    live_plan.add_destination_evidence(collected.attempts, collected.destination_drops, source_nodes)
    results = []
    for probe in probes:
        host = hosts.get(probe.source.key)
        node = host.node if host is not None else None
        results.append(live_plan.classify(
            probe, collected.attempts.get(probe.id, []), node=node,
            netns_names=collected.netns_names.get(node or "", {}), node_netns_names=collected.netns_names,
            expected_attempts=0 if probe.skip is not None else attempts))
    return results


def endpoint_refs(cluster: live_cluster.ClusterInventory, endpoint: spec_file.Endpoint,
                  default_namespace: str) -> list[str]:
    """``ns/pod`` keys (or the address) an endpoint of a spec file stands for."""
    if endpoint.ip is not None:
        return [endpoint.ip]
    namespace = endpoint.namespace or default_namespace
    if endpoint.pod is not None:
        return [split_ref(endpoint.pod, namespace)]
    selector = endpoint.selector or ()
    keys = [pod.key for pod in cluster.inventory.pods
            if pod.namespace == namespace and pod.phase not in inventory.FINISHED_PHASES
            and all(pod.labels.get(key) == value for key, value in selector)]
    if not keys:
        labels = ",".join(f"{key}={value}" for key, value in selector)
        raise LiveError(f"endpoint {endpoint.name}: no running pod matches {labels or 'everything'} in "
                        f"namespace {namespace!r}", exit_code=exitcodes.NOT_FOUND)
    return keys


def plan_spec_file(cluster: live_cluster.ClusterInventory, document: spec_file.PolicyTestFile, *,
                   default_namespace: str) -> Plan:
    """Every test: each pod of ``from`` to each of ``to`` (a pod never to itself), per port."""
    probes: list[live_plan.PlannedProbe] = []
    namespace = document.namespace or default_namespace
    for test in document.tests:
        sources = endpoint_refs(cluster, test.source, namespace)
        destinations = endpoint_refs(cluster, test.destination, namespace)
        for source in sources:
            for destination in destinations:
                if source == destination:
                    continue
                probes.extend(plan_pair(cluster, source_ref=source, destination_ref=destination,
                                        default_namespace=namespace, specs=test.ports, declared=test.expect,
                                        name=test.name, first_number=len(probes)))
    return Plan(tuple(probes))
