"""watch.classify() names why a tracer pod did not start, from the pod and
the events as kubelet and the controllers really write them (the messages
below were captured from the local cluster, Kubernetes 1.34, or copied from
kubelet's sources where a failure could not be provoked there), with one
line for the user, the fix where there is one, and our exit code."""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest
from kubernetes import client as k8s

from kubectl_bpf.kube import errors, watch
from kubectl_bpf.protocol import codec, exitcodes

JOB = "kubectl-bpf-drops-k3x9q"
POD = f"{JOB}-7wrx6"
NS = "kubectl-bpf"
IMAGE = "localhost/kubectl-bpf/agent:0.1.0"


def make_pod(*, phase: str = "Pending", reason: Optional[str] = None, message: Optional[str] = None,
             state: Optional[dict[str, Any]] = None, conditions: tuple[dict[str, Any], ...] = (),
             node: Optional[str] = "vm", memory_limit: Optional[str] = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "agent", "image": IMAGE}
    if memory_limit:
        container["resources"] = {"limits": {"memory": memory_limit}}
    status: dict[str, Any] = {"phase": phase, "conditions": list(conditions), "qosClass": "Guaranteed"}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if state is not None:
        status["containerStatuses"] = [{"name": "agent", "image": IMAGE, "imageID": "", "ready": False,
                                        "restartCount": 0, "started": False, "state": state}]
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": POD, "namespace": NS, "labels": {"job-name": JOB}}, "spec": spec,
            "status": status}


def make_event(reason: str, message: str, *, kind: str = "Pod", kind_type: str = "Warning",
               at: str = "2026-11-24T21:11:38Z") -> dict[str, Any]:
    name = POD if kind == "Pod" else JOB
    return {"involvedObject": {"kind": kind, "name": name, "namespace": NS}, "reason": reason,
            "message": message, "type": kind_type, "count": 1, "firstTimestamp": at, "lastTimestamp": at,
            "metadata": {"name": f"{name}.18eb1786aa6cda0d", "uid": f"uid-{reason}-{at}"}}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


def terminated(code: int, reason: str = "Error", message: str = "") -> dict[str, Any]:
    at = "2026-11-24T21:11:38+00:00"
    return {"terminated": {"exitCode": code, "reason": reason, "message": message, "startedAt": at,
                           "finishedAt": at}}


def classify(pod: Optional[dict[str, Any]], *events: dict[str, Any],
             job: Optional[dict[str, Any]] = None) -> watch.StartFailure:
    failure = watch.classify(pod, list(events), job=job)
    assert failure is not None
    assert "\n" not in failure.message and len(failure.message) <= watch.MESSAGE_MAX_CHARS + 200
    return failure


# -- the Job's pod is refused by admission (FailedCreate on the Job) ------------------------------

POD_SECURITY = (f'Error creating: pods "{POD}" is forbidden: violates PodSecurity "baseline:latest": '
                'non-default capabilities (container "agent" must not include "BPF", "PERFMON", "SYS_ADMIN" '
                'in securityContext.capabilities.add), host namespaces (hostPID=true), hostPath volumes '
                '(volume "btf"), privileged (container "agent" must not set securityContext.privileged=true)')


def test_pod_security_refusal_is_an_admission_error_with_the_label_that_fixes_it() -> None:
    failure = classify(None, make_event("FailedCreate", POD_SECURITY, kind="Job"))
    assert (failure.reason, failure.exit_code, failure.fatal) == ("FailedCreate", exitcodes.PERMISSION, True)
    assert 'violates PodSecurity "baseline:latest"' in failure.message
    assert f"kubectl label namespace {NS} pod-security.kubernetes.io/enforce=privileged" in failure.message
    assert isinstance(failure.error(), errors.AdmissionError)
    assert failure.error().exit_code == exitcodes.PERMISSION


@pytest.mark.parametrize("message", [
    f'Error creating: pods "{POD}" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, '
    'limited: pods=0',
    f'Error creating: admission webhook "deny.example.com" denied the request: pods "{POD}" are not allowed',
])
def test_quota_and_webhook_refusals_are_admission_errors(message: str) -> None:
    failure = classify(None, make_event("FailedCreate", message, kind="Job"))
    assert failure.exit_code == exitcodes.PERMISSION
    assert message.removeprefix("Error creating: ") in failure.message
    assert isinstance(failure.error(), errors.AdmissionError)


def test_a_failed_create_that_is_not_admission_is_a_start_error() -> None:
    message = ('Error creating: Internal error occurred: failed calling webhook "x.example.com": '
               'failed to call webhook: Post "https://x.svc:443/validate": dial tcp 10.96.0.9:443: '
               'connect: connection refused')
    failure = classify(None, make_event("FailedCreate", message, kind="Job"))
    assert failure.exit_code == exitcodes.FAILURE
    assert type(failure.error()) is errors.StartError
    assert "connection refused" in failure.message


def test_a_failed_create_is_stale_once_the_pod_exists() -> None:
    old = make_event("FailedCreate", POD_SECURITY, kind="Job")
    assert watch.classify(make_pod(state=waiting("ContainerCreating")), [old]) is None
    assert watch.classify(make_pod(phase="Running", state={"running": {"startedAt": "x"}}), [old]) is None


# -- the pod never gets a node ---------------------------------------------------------------------

UNSCHEDULABLE = ("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. no new "
                 "claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful "
                 "for scheduling.")


def test_unschedulable_condition_fails_with_the_scheduler_message() -> None:
    pod = make_pod(node=None, conditions=({"type": "PodScheduled", "status": "False",
                                           "reason": "Unschedulable", "message": UNSCHEDULABLE},))
    failure = classify(pod)
    assert failure.reason == "Unschedulable" and UNSCHEDULABLE[:40] in failure.message


def test_failed_scheduling_event_alone_is_enough() -> None:
    failure = classify(make_pod(node=None), make_event("FailedScheduling", UNSCHEDULABLE))
    assert failure.reason == "Unschedulable" and "cannot be scheduled" in failure.message


# -- kubelet refuses or evicts the pod (phase Failed with a reason) ------------------------------

@pytest.mark.parametrize(("reason", "message", "expect"), [
    ("OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 500000, used: 0, "
                 "capacity: 2000", "no room for the tracer pod's requests"),
    ("OutOfmemory", "Pod was rejected: Node didn't have enough resource: memory, requested: 68719476736, "
                    "used: 0, capacity: 4110417920", "no room"),
    ("OutOfpods", "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 110, "
                  "capacity: 110", "no room"),
    ("NodeAffinity", "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node "
                     "affinity/selector", "labels do not match"),
    ("Evicted", "The node was low on resource: memory. Threshold quantity: 100Mi, available: 81000Ki. "
                "Container agent was using 120Mi, request is 64Mi, has larger consumption of memory.",
     "was evicted"),
])
def test_kubelet_rejections_and_evictions_are_fatal(reason: str, message: str, expect: str) -> None:
    failure = classify(make_pod(phase="Failed", reason=reason, message=message))
    assert (failure.reason, failure.fatal) == (reason, True)
    assert message.removeprefix("Pod was rejected: ") in failure.message
    assert expect in failure.message and "node vm" in failure.message


# -- the image -------------------------------------------------------------------------------------

NEVER_PULL = f'Container image "{IMAGE}" is not present with pull policy of Never'
PULL_REFUSED = (f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
                'failed to do request: Head "http://localhost/v2/kubectl-bpf/agent/manifests/0.1.0": '
                'dial tcp 127.0.0.1:80: connect: connection refused')


@pytest.mark.parametrize(("reason", "message"), [
    ("ErrImageNeverPull", NEVER_PULL),
    ("ErrImagePull", PULL_REFUSED),
    ("ImagePullBackOff", f'Back-off pulling image "{IMAGE}": ErrImagePull: {PULL_REFUSED}'),
    ("InvalidImageName", 'Failed to apply default image tag "localhost/kubectl-bpf/UPPER:1": couldn\'t parse '
                         'image name "localhost/kubectl-bpf/UPPER:1": invalid reference format: repository '
                         'name (kubectl-bpf/UPPER) must be lowercase'),
])
def test_image_failures_name_the_image_the_reason_and_the_fix(reason: str, message: str) -> None:
    failure = classify(make_pod(state=waiting(reason, message)))
    assert failure.fatal and failure.reason == reason
    assert failure.message.startswith(f'tracer pod on node vm cannot pull image "{IMAGE}": {reason}: ')
    assert failure.message.endswith("; build/import the image or pass --image")
    assert type(failure.error()) is errors.StartError


def test_a_transient_pull_failure_is_reported_but_not_fatal() -> None:
    message = (f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": failed to '
               'do request: Head "https://registry.example.com/v2/agent/manifests/0.1.0": dial tcp '
               '203.0.113.5:443: i/o timeout')
    failure = classify(make_pod(state=waiting("ErrImagePull", message)))
    assert not failure.fatal and "kubelet retries" in failure.message


def test_a_private_registry_refusal_suggests_a_pull_secret() -> None:
    message = (f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": pull '
               'access denied, repository does not exist or may require authorization: server message: '
               'insufficient_scope: authorization failed')
    failure = classify(make_pod(state=waiting("ErrImagePull", message)))
    assert failure.fatal and "--image-pull-secret" in failure.message


# -- the container cannot be created ---------------------------------------------------------------

@pytest.mark.parametrize(("reason", "message"), [
    ("CreateContainerConfigError", 'configmap "missing-cm" not found'),
    ("CreateContainerConfigError", 'failed to prepare subPath for volumeMount "h" of container "agent"'),
    ("CreateContainerError", 'failed to reserve container name "agent_kubectl-bpf-drops-k3x9q-7wrx6_'
                             'kubectl-bpf_97dac006_0": name is reserved'),
])
def test_container_creation_failures_are_fatal_with_the_kubelet_message(reason: str, message: str) -> None:
    failure = classify(make_pod(state=waiting(reason, message)))
    assert failure.fatal and failure.reason == reason
    assert f"{reason}: {message}" in failure.message


@pytest.mark.parametrize("message", [
    'MountVolume.SetUp failed for volume "btf" : hostPath type check failed: /sys/kernel/btf is not a '
    'directory',
    'MountVolume.SetUp failed for volume "lease" : secret "missing" not found',
])
def test_failed_mount_events_are_fatal(message: str) -> None:
    failure = classify(make_pod(state=waiting("ContainerCreating")), make_event("FailedMount", message))
    assert failure.fatal and failure.reason == "FailedMount" and message in failure.message


def test_a_sandbox_failure_is_reported_but_kubelet_retries_it() -> None:
    message = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for '
               'sandbox "4f1c": plugin type="bridge" failed (add): failed to allocate for range 0')
    failure = classify(make_pod(state=waiting("ContainerCreating")),
                       make_event("FailedCreatePodSandBox", message))
    assert not failure.fatal and "kubelet retries" in failure.message


def test_events_of_another_pod_are_ignored() -> None:
    other = make_event("FailedMount", "MountVolume.SetUp failed")
    other["involvedObject"]["name"] = f"{JOB}-zzzzz"
    assert watch.classify(make_pod(state=waiting("ContainerCreating")), [other]) is None


# -- the Job's deadline ---------------------------------------------------------------------------

def test_deadline_exceeded_on_the_job_is_a_timeout() -> None:
    event = make_event("DeadlineExceeded", "Job was active longer than specified deadline", kind="Job")
    failure = classify(make_pod(state=waiting("ContainerCreating")), event)
    assert (failure.reason, failure.exit_code) == ("DeadlineExceeded", exitcodes.TIMEOUT)
    assert failure.error().exit_code == exitcodes.TIMEOUT


def test_the_jobs_failure_target_condition_explains_a_pod_being_deleted() -> None:
    job = {"status": {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
                                      "message": "Job was active longer than specified deadline"}]}}
    failure = classify(make_pod(node="ghost"), job=job)
    assert failure.exit_code == exitcodes.TIMEOUT and "activeDeadlineSeconds" in failure.message


def test_a_pod_past_its_own_deadline_is_a_timeout() -> None:
    failure = classify(make_pod(phase="Failed", reason="DeadlineExceeded",
                                message="Pod was active on the node longer than the specified deadline"))
    assert failure.exit_code == exitcodes.TIMEOUT


# -- the agent ran and died -----------------------------------------------------------------------

def test_oom_killed_names_the_memory_limit() -> None:
    failure = classify(make_pod(phase="Failed", state=terminated(137, "OOMKilled"), memory_limit="64Mi"))
    assert failure.reason == "OOMKilled" and "64Mi" in failure.message and "137" in failure.message


def test_a_runtime_start_error_is_fatal_with_the_runtime_message() -> None:
    message = ('failed to create containerd task: failed to create shim task: OCI runtime create failed: '
               'runc create failed: unable to start container process: exec: "/nonexistent-binary": stat '
               '/nonexistent-binary: no such file or directory: unknown')
    failure = classify(make_pod(phase="Failed", state=terminated(128, "StartError", message)))
    assert failure.reason == "StartError" and "no such file or directory" in failure.message


def test_an_early_exit_carries_the_exit_code_and_the_last_output() -> None:
    message = ("Traceback (most recent call last):\n  File \"agent.py\", line 1, in <module>\n"
               "ImportError: libbpf.so.1: cannot open shared object file\n")
    failure = classify(make_pod(phase="Failed", state=terminated(3, message=message)))
    assert (failure.reason, failure.exit_code, failure.explained) == (watch.AGENT_EXITED, 3, True)
    assert "exited with code 3" in failure.message
    assert "last output:" in failure.message
    assert "libbpf.so.1: cannot open shared object file" in failure.message


def test_an_early_exit_prefers_the_agents_own_error_record() -> None:
    message = "\n".join([codec.encode("preflight", 1, {"btf": False}),
                         codec.encode("error", 2, {"message": "kernel has no BTF", "exit_code": 5}),
                         codec.encode("end", 3, {"status": "error", "exit_code": 5})]) + "\n"
    failure = classify(make_pod(phase="Failed", state=terminated(5, message=message)))
    assert failure.exit_code == exitcodes.UNSUPPORTED
    assert failure.message.endswith("exited with code 5: kernel has no BTF")


def test_an_early_exit_without_a_termination_message_waits_for_the_log_tail() -> None:
    failure = classify(make_pod(phase="Failed", state=terminated(1)))
    assert not failure.explained and failure.fatal
    told = watch.explain_exit(failure, ["Traceback (most recent call last):", "SystemExit: boom"])
    assert told.explained and told.message.endswith("last output: Traceback (most recent call last): | "
                                                    "SystemExit: boom")
    assert watch.explain_exit(told, ["other"]) is told  # explained once


def test_an_exit_code_that_is_not_ours_maps_to_failure() -> None:
    failure = classify(make_pod(phase="Failed", state=terminated(137, "Error", "killed")))
    assert failure.exit_code == exitcodes.FAILURE


# -- all is well --------------------------------------------------------------------------------

def test_nothing_yet_is_not_a_failure() -> None:
    assert watch.classify(None, []) is None
    assert watch.classify(make_pod(node=None), []) is None
    assert watch.classify(make_pod(state=waiting("ContainerCreating")),
                          [make_event("Pulled", f'Container image "{IMAGE}" already present on machine',
                                      kind_type="Normal")]) is None


def test_a_running_agent_wins_over_old_warnings() -> None:
    pod = make_pod(phase="Running", state={"running": {"startedAt": "2026-11-24T21:11:40Z"}})
    old = make_event("FailedMount", 'MountVolume.SetUp failed for volume "lease" : object not registered')
    assert watch.classify(pod, [old]) is None


def test_an_agent_that_already_finished_with_zero_is_not_a_failure() -> None:
    assert watch.classify(make_pod(phase="Succeeded", state=terminated(0, "Completed")), []) is None


def test_a_long_message_is_cut_but_its_fix_is_kept() -> None:
    failure = classify(make_pod(state=waiting("ErrImageNeverPull", "x" * 5000)))
    assert "..." in failure.message and failure.message.endswith("; build/import the image or pass --image")


def test_client_model_objects_are_accepted_as_well_as_dicts() -> None:
    serializer = k8s.ApiClient()
    pod = make_pod(state=waiting("ErrImageNeverPull", NEVER_PULL))
    model = serializer.deserialize(json.dumps(pod), "V1Pod", "application/json")
    assert isinstance(model, k8s.V1Pod)
    failure = watch.classify(model, [])
    assert failure is not None and failure.reason == "ErrImageNeverPull"
