"""A session someone else stops (kubectl delete job, kubectl delete pod,
kubectl bpf gc --all from another shell) says who stopped it and exits
STOPPED_OUTSIDE (9); its JSON names the deletion, not the SIGTERM the agent
saw, and still ends with an ``end`` record. A session whose client was
killed is listed as it really is, and gc removes it."""

from __future__ import annotations

import json
import subprocess
from typing import Any, Callable, Optional

import pytest

from kubectl_bpf.protocol import exitcodes
from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import start_server
from tests.e2e.test_drops_of_a_real_pod import read_until


def _tracer(cluster: cluster_mod.Cluster) -> tuple[str, str]:
    """(job, pod) of the one running session."""
    pods = cluster.get_json("pods", "-n", cluster_mod.JOB_NAMESPACE, "-l", cluster_mod.MANAGED)["items"]
    assert len(pods) == 1, [pod["metadata"]["name"] for pod in pods]
    return pods[0]["metadata"]["labels"]["job-name"], pods[0]["metadata"]["name"]


def _delete_job(cluster: cluster_mod.Cluster) -> None:
    cluster.kubectl("delete", "job", "-n", cluster_mod.JOB_NAMESPACE, _tracer(cluster)[0], "--wait=false")


def _delete_pod(cluster: cluster_mod.Cluster) -> None:
    cluster.kubectl("delete", "pod", "-n", cluster_mod.JOB_NAMESPACE, _tracer(cluster)[1], "--wait=false")


def _gc_all(cluster: cluster_mod.Cluster) -> None:
    result = cluster.plugin("gc", "--all")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("stop", "stopped_by", "said"), [
    (_delete_job, "job-deleted", "kubectl delete job, or kubectl bpf gc --all"),
    (_delete_pod, "pod-deleted", "kubectl delete pod"),
    (_gc_all, "job-deleted", "kubectl delete job, or kubectl bpf gc --all"),
], ids=["delete-job", "delete-pod", "gc-all"])
def test_a_session_stopped_from_outside_says_so_and_exits_9(
        cluster: cluster_mod.Cluster, namespace: str, stop: Callable[[cluster_mod.Cluster], None],
        stopped_by: str, said: str) -> None:
    start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json", "--duration", "120")
    try:
        read_until(process, "ready", timeout_s=60)
        stop(cluster)
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    finally:
        process.kill()
    assert process.returncode == exitcodes.STOPPED_OUTSIDE == 9, stderr
    assert "stopped from outside" in stderr and said in stderr, stderr
    assert "Traceback" not in stderr
    lines = cluster_mod.records(stdout)
    assert lines[-1]["type"] == "end", lines[-3:]
    assert lines[-1]["exit_code"] == exitcodes.STOPPED_OUTSIDE
    summaries = [r for r in lines if r["type"] == "summary"]
    assert all(s["stopped_by"] == stopped_by for s in summaries), summaries
    assert not any(r.get("stopped_by") == "SIGTERM" for r in lines)


def test_a_killed_clients_session_is_listed_as_it_is_and_gc_removes_it(cluster: cluster_mod.Cluster,
                                                                       namespace: str) -> None:
    """SIGKILL the client: the agent stops when the lease lapses; `list` shows
    the session finished and why (lease-expired), and `gc` removes it well
    before its --job-ttl would."""
    start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json",
                                     "--lease-ttl", "10s", "--job-ttl", "10m")
    try:
        read_until(process, "ready", timeout_s=60)
    finally:
        process.kill()
        process.communicate()

    def listed() -> Optional[dict[str, Any]]:
        result = cluster.plugin("list", "-o", "json")
        assert result.returncode == 0, result.stderr
        sessions = json.loads(result.stdout)["sessions"]
        return sessions[0] if sessions and sessions[0]["state"] == "Succeeded" else None

    session = cluster_mod.wait_for("the session to be listed as finished", listed, timeout_s=90)
    assert session["stopped_by"] == "lease-expired", session
    gc = cluster.plugin("gc")
    assert gc.returncode == 0, gc.stderr
    assert f"job kubectl-bpf/{session['job']} deleted" in gc.stdout, gc.stdout
    after = cluster.plugin("list", "-o", "json")
    assert json.loads(after.stdout)["sessions"] == []
