"""StartWatcher over a fake API server driven through the real Watch class:
it reports progress as the pod moves, returns once the agent runs, fails as
soon as a failure is visible, re-lists after 410 Gone, explains a pod that
disappears, times out naming the last phase, and stops its watch threads."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from kubernetes.client import exceptions as k8s_exceptions

from kubectl_bpf.kube import errors, watch
from kubectl_bpf.protocol import codec, exitcodes

from .conftest import END_WATCH, JOB, JOB_UID, FakeCluster

POD = f"{JOB}-7wrx6"
NS = "kubectl-bpf"
IMAGE = "localhost/kubectl-bpf/agent:0.1.0"


def make_pod(state: Optional[dict[str, Any]] = None, *, node: Optional[str] = "vm", started: bool = True,
             phase: str = "Pending", deleting: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if started:
        status["startTime"] = "2026-11-24T21:11:36Z"
    if state is not None:
        status["containerStatuses"] = [{"name": "agent", "image": IMAGE, "state": state}]
    metadata: dict[str, Any] = {"name": POD, "namespace": NS, "resourceVersion": "101",
                                "creationTimestamp": "2026-11-24T21:11:36Z", "labels": {"job-name": JOB},
                                "ownerReferences": [{"kind": "Job", "name": JOB, "uid": JOB_UID}]}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-24T21:11:40Z"
    spec: dict[str, Any] = {"containers": [{"name": "agent", "image": IMAGE}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": metadata, "spec": spec, "status": status}


def make_event(reason: str, message: str, *, kind: str = "Pod", name: str = POD,
               kind_type: str = "Warning", uid: str = JOB_UID) -> dict[str, Any]:
    involved = {"kind": kind, "name": name, "namespace": NS, "uid": uid if kind == "Job" else "pod-uid"}
    return {"metadata": {"name": f"{name}.{reason}", "uid": f"uid-{name}-{reason}", "resourceVersion": "102"},
            "involvedObject": involved, "reason": reason,
            "message": message, "type": kind_type, "lastTimestamp": "2026-11-24T21:11:38Z"}


RUNNING = {"running": {"startedAt": "2026-11-24T21:11:38Z"}}


class Progress:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, text: str) -> None:
        with self.changed:
            self.seen.append(text)
            self.changed.notify_all()

    def wait_for(self, text: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: text in self.seen, timeout=5), self.seen


def start(cluster: FakeCluster, *, timeout_s: float = 10.0,
          progress: Optional[Progress] = None) -> tuple[watch.StartWatcher, threading.Thread, dict[str, Any]]:
    """Run wait() in a thread, as the session does: the test drives the cluster meanwhile."""
    watcher = watch.StartWatcher(cluster.kube, NS, JOB, timeout_s=timeout_s,  # type: ignore[arg-type]
                                 on_progress=progress or Progress())
    outcome: dict[str, Any] = {}

    def run() -> None:
        began = time.monotonic()
        try:
            outcome["pod"] = watcher.wait()
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return watcher, thread, outcome


def finish(thread: threading.Thread, outcome: dict[str, Any]) -> dict[str, Any]:
    thread.join(10)
    assert not thread.is_alive()
    return outcome


def test_progress_is_reported_in_order_until_the_agent_runs(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod({"waiting": {"reason": "ContainerCreating"}})]]
    progress = Progress()
    _, thread, outcome = start(cluster, progress=progress)
    progress.wait_for("scheduled on vm")
    cluster.events.push("ADDED", make_event("Pulling", f'Pulling image "{IMAGE}"', kind_type="Normal"))
    progress.wait_for(f'pulling image "{IMAGE}"')
    cluster.pods.push("MODIFIED", make_pod(RUNNING, phase="Running"))
    assert finish(thread, outcome).get("pod") == POD
    assert progress.seen == ["scheduled on vm", f'pulling image "{IMAGE}"', "container started: loading BPF"]
    assert cluster.pods.calls[0]["label_selector"] == f"job-name={JOB}"
    watches = [call for call in cluster.pods.calls if call.get("watch")]
    assert watches and watches[0]["resource_version"] == "100" and watches[0]["timeout_seconds"] > 0
    assert watches[0]["_request_timeout"][1] > watches[0]["timeout_seconds"]


def test_an_agent_that_already_finished_is_returned_for_its_log(cluster: FakeCluster) -> None:
    done = make_pod({"terminated": {"exitCode": 0, "reason": "Completed"}}, phase="Succeeded")
    cluster.pods.lists = [[done]]
    _, thread, outcome = start(cluster)
    assert finish(thread, outcome).get("pod") == POD


def test_an_admission_refusal_fails_at_once(cluster: FakeCluster) -> None:
    _, thread, outcome = start(cluster)
    cluster.events.push("ADDED", make_event(
        "FailedCreate", f'Error creating: pods "{POD}" is forbidden: violates PodSecurity "baseline:latest": '
        'privileged (container "agent" must not set securityContext.privileged=true)', kind="Job", name=JOB))
    error = finish(thread, outcome)["error"]
    assert isinstance(error, errors.AdmissionError) and error.exit_code == exitcodes.PERMISSION
    assert outcome["seconds"] < 2


def test_a_failure_already_listed_is_reported_without_waiting_for_a_change(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod({"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}})]]
    _, thread, outcome = start(cluster)
    error = finish(thread, outcome)["error"]
    assert isinstance(error, errors.StartError) and "ErrImageNeverPull" in str(error)


def test_events_of_other_jobs_are_ignored(cluster: FakeCluster) -> None:
    cluster.events.lists = [[make_event("FailedCreate", "Error creating: forbidden", kind="Job",
                                        name="kubectl-bpf-drops-other")]]
    _, thread, outcome = start(cluster, timeout_s=0.3)
    assert isinstance(finish(thread, outcome)["error"], errors.StartTimeoutError)


def test_the_timeout_names_the_last_phase(cluster: FakeCluster) -> None:
    _, thread, outcome = start(cluster, timeout_s=0.3)
    error = finish(thread, outcome)["error"]
    assert isinstance(error, errors.StartTimeoutError) and error.exit_code == exitcodes.TIMEOUT
    assert "did not start within 0.3s" in str(error)
    assert "last: waiting for the Job controller to create the tracer pod" in str(error)


def test_a_pod_the_kubelet_never_takes_up_asks_whether_the_node_is_ready(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod(node="ghost", started=False)]]
    _, thread, outcome = start(cluster, timeout_s=0.3)
    message = str(finish(thread, outcome)["error"])
    assert "last: scheduled on ghost" in message and "is the node Ready?" in message


def test_an_expired_watch_is_relisted(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod({"waiting": {"reason": "ContainerCreating"}})],
                          [make_pod(RUNNING, phase="Running")]]
    _, thread, outcome = start(cluster)
    cluster.pods.feed.put({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                       "message": "too old resource version: 100 (2000)"}})
    assert finish(thread, outcome).get("pod") == POD
    assert cluster.pods.list_calls == 2


def test_a_watch_that_ends_is_resumed_from_the_last_version(cluster: FakeCluster) -> None:
    _, thread, outcome = start(cluster)
    cluster.pods.push("ADDED", make_pod({"waiting": {"reason": "ContainerCreating"}}))
    cluster.pods.feed.put(END_WATCH)
    running = make_pod(RUNNING, phase="Running")
    running["metadata"]["resourceVersion"] = "105"
    cluster.pods.push("MODIFIED", running)
    assert finish(thread, outcome).get("pod") == POD
    watches = [call for call in cluster.pods.calls if call.get("watch")]
    assert [call["resource_version"] for call in watches[:2]] == ["100", "101"]
    assert cluster.pods.list_calls == 1


def test_close_aborts_the_wait(cluster: FakeCluster) -> None:
    watcher, thread, outcome = start(cluster)
    time.sleep(0.1)
    watcher.close()
    error = finish(thread, outcome)["error"]
    assert isinstance(error, watch.StartAbortedError) and error.exit_code == exitcodes.INTERRUPTED


def test_a_pod_deleted_by_the_jobs_deadline_is_a_timeout_failure(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod(node="ghost", started=False)]]
    cluster.job = {"metadata": {"name": JOB, "uid": JOB_UID}, "status": {"conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
         "message": "Job was active longer than specified deadline"}]}}
    progress = Progress()
    _, thread, outcome = start(cluster, progress=progress)
    progress.wait_for("scheduled on ghost")
    cluster.pods.push("MODIFIED", make_pod(node="ghost", started=False, deleting=True))
    error = finish(thread, outcome)["error"]
    assert isinstance(error, errors.StartError) and error.exit_code == exitcodes.TIMEOUT
    assert "activeDeadlineSeconds" in str(error)


def test_a_deleted_job_is_named_as_the_reason(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod({"waiting": {"reason": "ContainerCreating"}})]]
    progress = Progress()
    _, thread, outcome = start(cluster, progress=progress)
    progress.wait_for("scheduled on vm")
    cluster.job = None
    cluster.pods.push("DELETED", make_pod({"waiting": {"reason": "ContainerCreating"}}))
    error = finish(thread, outcome)["error"]
    assert isinstance(error, errors.StartError) and f"Job {NS}/{JOB} was deleted" in str(error)


def test_an_early_exit_without_termination_message_shows_the_log_tail(cluster: FakeCluster) -> None:
    cluster.log_tail = (codec.encode("error", 2, {"message": "no BTF at /sys/kernel/btf/vmlinux",
                                                  "exit_code": 5}) + "\n").encode()
    cluster.pods.lists = [[make_pod({"terminated": {"exitCode": 5, "reason": "Error"}}, phase="Failed")]]
    _, thread, outcome = start(cluster)
    error = finish(thread, outcome)["error"]
    assert error.exit_code == exitcodes.UNSUPPORTED
    assert str(error).endswith("exited with code 5: no BTF at /sys/kernel/btf/vmlinux")


def test_events_and_pods_of_an_earlier_job_of_the_same_name_are_ignored(cluster: FakeCluster) -> None:
    stale = make_event("FailedCreate", "Error creating: forbidden", kind="Job", uid="uid-of-an-earlier-job")
    old_pod = make_pod({"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}})
    old_pod["metadata"]["ownerReferences"][0]["uid"] = "uid-of-an-earlier-job"
    cluster.events.lists = [[stale]]
    cluster.pods.lists = [[old_pod]]
    _, thread, outcome = start(cluster, timeout_s=0.3)
    assert isinstance(finish(thread, outcome)["error"], errors.StartTimeoutError)


def test_a_missing_job_fails_at_once(cluster: FakeCluster) -> None:
    cluster.job = None
    _, thread, outcome = start(cluster)
    error = finish(thread, outcome)["error"]
    assert isinstance(error, errors.StartError) and "not found" in str(error)
    assert not cluster.pods.calls


def test_a_forbidden_watch_is_a_permission_error(cluster: FakeCluster) -> None:
    cluster.events.error = k8s_exceptions.ApiException(status=403, reason="Forbidden")
    _, thread, outcome = start(cluster)
    assert isinstance(finish(thread, outcome)["error"], errors.PermissionDeniedError)


def test_watch_threads_are_gone_after_the_wait(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod(RUNNING, phase="Running")]]
    before = set(threading.enumerate())
    _, thread, outcome = start(cluster)
    assert finish(thread, outcome).get("pod") == POD
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("watch-")]
    assert all(response.shut.is_set() for response in cluster.pods.responses + cluster.events.responses)


def test_wait_for_start_is_the_watcher_in_one_call(cluster: FakeCluster) -> None:
    cluster.pods.lists = [[make_pod(RUNNING, phase="Running")]]
    seen: list[str] = []
    assert watch.wait_for_start(cluster.kube, NS, JOB, timeout_s=5,  # type: ignore[arg-type]
                                on_progress=seen.append) == POD
    assert seen == ["scheduled on vm", "container started: loading BPF"]
