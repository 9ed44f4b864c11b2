"""A session that ends on a signal its client did not send asks the API
what someone else removed: the Job (kubectl delete job, gc --all) or only
its pod (kubectl delete pod, a drain). When the API cannot say, nothing is
claimed."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kubectl_bpf.gadgets.drops import cluster as drops_cluster
from kubectl_bpf.kube import client, jobs, session, targets

from .conftest import FakeCluster, api_error, job_json, pod_json

NS = "kubectl-bpf"


def test_a_deleted_job_is_what_was_removed(kube: client.Kube, cluster: FakeCluster) -> None:
    assert jobs.deleted_part(kube, NS, "kubectl-bpf-drops-x", "kubectl-bpf-drops-x-abc") == "job"


def test_a_job_being_deleted_counts_as_deleted(kube: client.Kube, cluster: FakeCluster) -> None:
    job = job_json("j1", active=1)
    job["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    cluster.add_job(job)
    assert jobs.deleted_part(kube, NS, "j1", "p1") == "job"


def test_a_live_job_with_its_pod_deleted_is_a_pod_deletion(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(job_json("j1", active=1))
    cluster.add_pod(pod_json("p1", namespace=NS, deleting=True))
    assert jobs.deleted_part(kube, NS, "j1", "p1") == "pod"
    cluster.pods.clear()
    assert jobs.deleted_part(kube, NS, "j1", "p1") == "pod"


def test_a_live_job_and_pod_mean_nobody_else_stopped_it(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(job_json("j1", active=1))
    cluster.add_pod(pod_json("p1", namespace=NS))
    assert jobs.deleted_part(kube, NS, "j1", "p1") is None


def test_an_api_that_cannot_answer_claims_nothing(kube: client.Kube, cluster: FakeCluster,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise api_error(503, "unavailable")

    monkeypatch.setattr(kube.batch, "read_namespaced_job", refuse)
    assert jobs.deleted_part(kube, NS, "j1", "p1") is None


def _json_view(monkeypatch: pytest.MonkeyPatch) -> tuple[drops_cluster.ClusterOutput, io.StringIO]:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    group = targets.NodeGroup("n1", ())
    view = drops_cluster.ClusterOutput(drops_cluster.PodIndex([group], {}), output="json", aggregate=False)
    return view, out


def test_json_ends_with_the_clients_error_and_end_when_the_agents_never_came(
        monkeypatch: pytest.MonkeyPatch) -> None:
    view, out = _json_view(monkeypatch)
    view.handle("n1", {"v": 1, "seq": 7, "type": "stats"})
    view.finished(session.NodeFinished("n1", "log stream broke", 1, ended=False))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["type"] for line in lines] == ["stats", "error", "end"]
    assert [line["seq"] for line in lines] == [7, 8, 9]
    assert lines[1]["message"] == "log stream broke" and lines[1]["origin"] == "client"
    assert lines[2] == {"v": 1, "node": "n1", "origin": "client", "seq": 9, "type": "end", "status": "error",
                        "exit_code": 1}


def test_json_gets_no_second_end_after_the_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    view, out = _json_view(monkeypatch)
    view.handle("n1", {"v": 1, "seq": 3, "type": "end", "status": "ok", "exit_code": 9})
    view.finished(session.NodeFinished("n1", "stopped from outside: ...", 9, ended=True))
    assert [json.loads(line)["type"] for line in out.getvalue().splitlines()] == ["end"]
