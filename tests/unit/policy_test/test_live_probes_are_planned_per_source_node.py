"""Live policy-test: the probes each node's agent gets, and external destinations."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from kubectl_bpf.gadgets.policy_test import evaluate, inventory, live_cluster, live_plan, live_run, queries
from kubectl_bpf.kube import client, session, settings, targets
from kubectl_bpf.protocol import exitcodes

POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "egress", "namespace": "x"},
          "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
              {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443}]}]}}


def pod(name: str, ip: str, node: str) -> dict[str, object]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "x"}, "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIP": ip}}


INV = inventory.parse_objects([{"kind": "List", "items": [
    pod("a", "10.0.0.1", "n1"), pod("b", "10.0.0.2", "n2"), pod("c", "10.0.0.3", "n2"), POLICY]}])
HOSTS = {p.key: targets.PodTarget(namespace="x", name=p.name, uid=p.name, node=p.node_name,
                                  ips=tuple(map(str, p.ips)), container_ids=(f"{p.name:0<64}",),
                                  host_network=False, phase="Running") for p in INV.pods}


def matrix(port: int) -> list[live_plan.PlannedProbe]:
    index = evaluate.PolicyIndex(INV)
    groups = queries.evaluate_groups(index, pods=INV.pods, specs=[queries.PortSpec(port, "TCP")])
    return live_plan.plan_cells(cell for group in groups for cell in group.cells)


def test_every_pair_but_self_is_probed_from_its_source_node_with_count_equal_to_attempts() -> None:
    probes = matrix(8080)
    assert len(probes) == 9 and sum(p.skip is None for p in probes) == 6
    plans, bound = live_cluster.plan_nodes(probes, HOSTS, attempts=3, timeout_s=2.0, rate_per_s=50.0)
    assert [(plan.group.node, plan.gadget) for plan in plans] == [
        ("n1", "probe"), ("n2", "probe"), ("n1", "drops"), ("n2", "drops")]
    n1, n2, n1_tracer, n2_tracer = plans
    # Each destination node traces the pods that probes from another node go to.
    assert {pod.name for pod in n1_tracer.group.pods} == {"a"}
    assert {pod.name for pod in n2_tracer.group.pods} == {"b", "c"}
    assert n2_tracer.attempts == 0 and n2_tracer.params["wakeup_bytes"] == 0
    assert [p["src"]["container_id"][0] for p in n1.params["probes"]] == ["a", "a"]
    assert n2.attempts == 4 * 3 == sum(p["attempts"] for p in n2.params["probes"])
    assert {pod.name for pod in n2.group.pods} == {"b", "c"}  # the pods on n2, to name their netns
    assert bound > 2.0 * 3


def test_probes_within_one_node_need_no_destination_tracer() -> None:
    probes = [probe for probe in matrix(8080) if {probe.source.key, probe.destination.key} == {"x/b", "x/c"}]
    plans, _ = live_cluster.plan_nodes(probes, HOSTS, attempts=1, timeout_s=1.0, rate_per_s=50.0)
    assert [(plan.group.node, plan.gadget) for plan in plans] == [("n2", "probe")]


def test_egress_isolation_is_evaluated_for_an_address_outside_the_pods() -> None:
    source = INV.pods[0]
    allowed = live_plan.evaluate_external(INV, source=source, ip=ipaddress.ip_address("192.0.2.9"),
                                          traffic=evaluate.Traffic(443))
    denied = live_plan.evaluate_external(INV, source=source, ip=ipaddress.ip_address("198.51.100.1"),
                                         traffic=evaluate.Traffic(443))
    assert allowed.expected == "allow" and allowed.because[0] == "x/egress egress[0] via ipBlock"
    assert denied.expected == "deny"


def test_a_port_that_cannot_be_probed_is_planned_but_skipped() -> None:
    probes = live_plan.plan_external(INV, source=INV.pods[0], address="192.0.2.9",
                                     specs=[queries.PortSpec(132, "SCTP"), queries.PortSpec(443, "TCP")])
    assert [p.skip is None for p in probes] == [False, True]
    assert probes[0].skip is not None and "SCTP" in probes[0].skip


CLUSTER = live_cluster.ClusterInventory(inventory=INV, hosts=HOSTS)


@pytest.mark.parametrize("destination", ["x/b", "10.0.0.2", "192.0.2.9"])
def test_a_named_port_the_destination_lacks_is_refused_before_any_probe(destination: str) -> None:
    """Planning runs before any Job is created: a typo'd --port ends the run there."""
    with pytest.raises(live_run.LiveError) as caught:
        live_run.plan_pair(CLUSTER, source_ref="x/a", destination_ref=destination, default_namespace="x",
                           specs=[queries.PortSpec("htp", None)])
    assert caught.value.exit_code == exitcodes.USAGE
    assert str(caught.value).startswith("bad port 'htp'")


def test_a_named_port_no_matrix_pod_declares_is_refused() -> None:
    with pytest.raises(live_run.LiveError) as caught:
        live_run.plan_matrix(CLUSTER, namespace="x", keys=None, specs=[queries.PortSpec("htp", "TCP")])
    assert caught.value.exit_code == exitcodes.USAGE
    assert "no destination declares a container port of that name" in str(caught.value)


def test_a_finished_destination_pod_is_target_state_like_a_finished_source() -> None:
    done = dict(pod("done", "10.0.0.9", "n1"), status={"phase": "Succeeded", "podIP": "10.0.0.9"})
    inv = inventory.parse_objects([{"kind": "List", "items": [pod("a", "10.0.0.1", "n1"), done]}])
    cluster = live_cluster.ClusterInventory(inventory=inv, hosts={"x/a": HOSTS["x/a"]})
    with pytest.raises(live_run.LiveError) as caught:
        live_run.plan_pair(cluster, source_ref="x/a", destination_ref="x/done", default_namespace="x",
                           specs=[queries.PortSpec(80, "TCP")])
    assert caught.value.exit_code == exitcodes.TARGET_STATE == 7
    assert str(caught.value) == "cannot probe x/done: it is Succeeded"


def test_an_impossible_dotted_address_is_called_that_not_a_missing_pod() -> None:
    with pytest.raises(live_run.LiveError) as caught:
        live_run.plan_pair(CLUSTER, source_ref="x/a", destination_ref="999.1.1.1", default_namespace="x",
                           specs=[queries.PortSpec(80, "TCP")])
    assert caught.value.exit_code == exitcodes.USAGE
    assert str(caught.value) == "--to 999.1.1.1 is not a valid IP address (nor pod x/999.1.1.1)"


def test_one_session_runs_the_probes_and_the_destination_tracers_and_stops_them_after_the_probes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plans, bound = live_cluster.plan_nodes(matrix(8080), HOSTS, attempts=1, timeout_s=1.0, rate_per_s=50.0)
    stops: list[bool] = []
    monkeypatch.setattr(session.Session, "stop", lambda self: stops.append(True))
    seen: dict[str, object] = {}

    def run(live_session: session.Session, *, on_record: Any, max_wait_s: float) -> int:
        pod_specs = [job["spec"]["template"]["spec"] for job in live_session.jobs]
        commands = [pod["containers"][0]["command"] for pod in pod_specs]
        seen["gadgets"] = sorted(json.loads(command[-1])["gadget"] for command in commands)
        seen["names"] = {job["metadata"]["name"] for job in live_session.jobs}
        drop = {"type": "drop", "reason": "NETFILTER_DROP", "src": "10.0.0.1", "dst": "10.0.0.2"}
        on_record("n2", drop)
        on_record("n1", {"type": "summary", "attempts_planned": 2})
        seen["stopped_early"] = bool(stops)
        on_record("n2", {"type": "summary", "attempts_planned": 4})
        on_record("n2", {"type": "summary", "drops": 1})  # the tracer's own: not a probe summary
        return 0

    options = settings.SessionOptions(image="agent:1", job_namespace="kubectl-bpf", privileged=False,
                                      start_timeout_s=60, ttl_s=300, max_duration_s=3600, lease_ttl_s=60)
    kube = client.Kube(api=None, core=None, apps=None, batch=None, authz=None,  # type: ignore[arg-type]
                       context="t", user="alice", namespace="x", request_timeout_s=None)
    collected, code = live_cluster.run_probes(kube, plans, options=options, duration_s=bound, command="t",
                                              on_progress=lambda _: None, run=run)
    assert seen["gadgets"] == ["drops", "drops", "probe", "probe"]
    assert len(seen["names"]) == 4  # type: ignore[arg-type]  # a Job each, two on each node
    assert collected.destination_drops == [("n2", {"type": "drop", "reason": "NETFILTER_DROP",
                                                   "src": "10.0.0.1", "dst": "10.0.0.2"})]
    assert set(collected.summaries) == {"n1", "n2"} and collected.summaries["n2"]["attempts_planned"] == 4
    assert seen["stopped_early"] is False and stops == [True] and code == 0
