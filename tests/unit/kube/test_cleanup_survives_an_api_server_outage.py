"""Closing a session while the API server does not answer: the deletion is
retried (bounded, with a note on stderr each time) and succeeds once the
server is back; if it never comes back, the client says exactly which Jobs
were left, when they go by themselves and how to remove them now, and
exits UNREACHABLE instead of crashing with a traceback."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3.exceptions

from kubectl_bpf.kube import client, jobs, session, settings, targets
from kubectl_bpf.protocol import exitcodes, spec

from .conftest import FakeCluster, pod_json

OPTIONS = settings.SessionOptions(image="agent:1", job_namespace="kubectl-bpf", privileged=False,
                                  start_timeout_s=60, ttl_s=300, max_duration_s=3600, lease_ttl_s=60)


def started_session(kube: client.Kube, cluster: FakeCluster, notes: list[str]) -> session.Session:
    """A session whose Job exists (created as start() creates it)."""
    cluster.namespaces.add("kubectl-bpf")
    cluster.add_pod(pod_json("web"))
    pod = targets.resolve(kube, ["web"]).pods[0]
    live = session.Session(kube, gadget="drops", run_spec=spec.RunSpec(gadget="drops"),
                           groups=[targets.NodeGroup("n1", (pod,))], options=OPTIONS,
                           command="kubectl-bpf drops web", on_progress=notes.append)
    for job in live.jobs:
        jobs.create_job(kube, job)
        live._created.append(job["metadata"]["name"])
    return live


def refuse_deletes(kube: client.Kube, monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The next ``times`` Job deletions fail as a stopped API server makes them fail."""
    calls = [0]
    delete = kube.batch.delete_namespaced_job

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise urllib3.exceptions.MaxRetryError(None, "/apis/batch/v1", "Connection refused")  # type: ignore[arg-type]
        return delete(*args, **kwargs)

    monkeypatch.setattr(kube.batch, "delete_namespaced_job", flaky)
    return calls


def test_deletion_is_retried_until_the_server_is_back(kube: client.Kube, cluster: FakeCluster,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "CLEANUP_BACKOFF_S", 0.01)
    notes: list[str] = []
    live = started_session(kube, cluster, notes)
    calls = refuse_deletes(kube, monkeypatch, times=3)
    live.close()
    assert calls[0] == 4
    assert not cluster.jobs
    retries = [note for note in notes if note.startswith("cleanup: 1 tracer job(s) not deleted yet")]
    assert len(retries) == 3 and "Connection refused" in retries[0] and "retrying for" in retries[0]
    live.close()  # a second close deletes nothing again
    assert calls[0] == 4


def test_a_server_that_stays_down_leaves_a_named_job_and_the_command_to_remove_it(
        kube: client.Kube, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "CLEANUP_BACKOFF_S", 0.01)
    monkeypatch.setattr(session, "CLEANUP_RETRY_S", 0.1)
    notes: list[str] = []
    live = started_session(kube, cluster, notes)
    (name,) = live._created
    refuse_deletes(kube, monkeypatch, times=10**6)
    with pytest.raises(session.CleanupError) as caught:
        live.close()
    assert caught.value.exit_code == exitcodes.UNREACHABLE
    assert f"kubectl-bpf/{name}" in str(caught.value) and "kubectl bpf gc" in str(caught.value)
    left = notes[-1]
    assert left.startswith("cleanup failed; left on the cluster:")
    assert f"job kubectl-bpf/{name} (node n1)" in left
    assert "stops by itself 60s after the last lease renewal" in left
    assert f"kubectl delete job -n kubectl-bpf {name}" in left
    assert (("kubectl-bpf", name) in cluster.jobs)  # really left: the message is not a guess
