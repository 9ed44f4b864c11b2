"""The tracer Job as rendered for one node (golden file), its safety
properties, and the API calls around it: dry run, RBAC pre-check, create,
find, delete.

Regenerate the golden file after an intended change with
``UPDATE_GOLDEN=1 pytest tests/unit/kube``, and review the diff.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import pytest
import yaml

from kubectl_bpf.kube import client, errors, jobs, labels
from kubectl_bpf.protocol import exitcodes, spec

from .conftest import CONTAINER_ID, FakeCluster, api_error, job_json, pod_json

GOLDEN = pathlib.Path(__file__).parent / "golden" / "job-drops.yaml"
# Literal, not the gadget's defaults: the golden file changes only when the Job does.
PARAMS = {"reasons": ["NETFILTER_DROP", "NO_SOCKET"], "aggregate": False}
POD_SECURITY_MESSAGE = (
    'pods "kubectl-bpf-drops-k3x9q2mz-1a2b3c4d-x7k2p" is forbidden: violates PodSecurity "baseline:latest": '
    'non-default capabilities (container "agent" must not include "BPF", "PERFMON", "SYSLOG", "SYS_PTRACE" '
    'in securityContext.capabilities.add), hostPath volumes (volumes "btf", "host-proc")')


def fixed_request(**changes: Any) -> jobs.JobRequest:
    run_spec = spec.RunSpec(gadget="drops", target=spec.TargetSpec(container_ids=(CONTAINER_ID,),
                                                                   ips=("10.0.0.5", "fd00::5")),
                            duration_s=60.0, params=PARAMS)
    request = jobs.JobRequest(
        gadget="drops", run_id="k3x9q2mz", node="node-1.example.internal", run_spec=run_spec,
        image="localhost/kubectl-bpf/agent:0.1.0", targets=("shop/web",), user="alice@example.com",
        host="laptop", command="kubectl-bpf drops -n shop web --duration 60s",
        created_at="2026-01-01T00:00:00Z")
    return dataclasses.replace(request, **changes)


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def embedded_spec(job: dict[str, Any]) -> spec.RunSpec:
    command = container(job)["command"]
    assert command[:4] == ["python3", "-m", "kubectl_bpf.agent", "--spec"]
    return spec.RunSpec.from_json(command[4])


# -- rendering -------------------------------------------------------------------------------------


def test_job_matches_the_golden_file() -> None:
    job = jobs.build_job(fixed_request())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text("# build_job(fixed_request()) in test_tracer_job_matches_golden_and_is_checked_"
                          "before_creation.py;\n# regenerate with UPDATE_GOLDEN=1 and review the diff.\n"
                          + yaml.safe_dump(job, sort_keys=False, width=100), encoding="utf-8")
    assert yaml.safe_load(GOLDEN.read_text(encoding="utf-8")) == job


def test_job_is_plain_json_compatible_data() -> None:
    job = jobs.build_job(fixed_request())
    assert yaml.safe_load(yaml.safe_dump(job)) == job


def test_agent_gets_host_proc_the_lease_file_and_its_own_hard_stop() -> None:
    agent = embedded_spec(jobs.build_job(fixed_request()))
    assert agent.proc_root == jobs.HOST_PROC == "/host/proc"
    assert agent.lease_file == jobs.LEASE_FILE == "/etc/kubectl-bpf/podinfo/annotations"
    assert agent.lease_key == labels.LEASE_ANNOTATION
    assert agent.max_duration_s == 60.0
    assert agent.target == spec.TargetSpec(container_ids=(CONTAINER_ID,), ips=("10.0.0.5", "fd00::5"))
    assert agent.params == PARAMS


def test_lease_file_is_the_downward_api_projection_of_annotations() -> None:
    job = jobs.build_job(fixed_request())
    pod = job["spec"]["template"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "podinfo")
    mount = next(m for m in container(job)["volumeMounts"] if m["name"] == "podinfo")
    (item,) = volume["downwardAPI"]["items"]
    assert f"{mount['mountPath']}/{item['path']}" == jobs.LEASE_FILE
    assert item["fieldRef"]["fieldPath"] == "metadata.annotations"
    assert pod["metadata"]["annotations"][labels.LEASE_ANNOTATION] == "0"


def test_deadline_is_duration_plus_grace() -> None:
    job = jobs.build_job(fixed_request(grace_s=30.5))
    assert job["spec"]["activeDeadlineSeconds"] == 91


def test_without_duration_the_hard_maximum_bounds_agent_and_job() -> None:
    request = fixed_request(run_spec=dataclasses.replace(fixed_request().run_spec, duration_s=None),
                            max_duration_s=1800.0)
    job = jobs.build_job(request)
    assert job["spec"]["activeDeadlineSeconds"] == 1800 + jobs.DEFAULT_GRACE_S
    assert embedded_spec(job).max_duration_s == 1800.0
    assert embedded_spec(job).duration_s is None


def test_request_duration_wins_over_the_spec_for_the_deadline() -> None:
    job = jobs.build_job(fixed_request(duration_s=10.0, grace_s=5.0))
    assert job["spec"]["activeDeadlineSeconds"] == 15


def test_failed_tracer_is_never_retried_and_stays_minutes() -> None:
    job_spec = jobs.build_job(fixed_request())["spec"]
    assert job_spec["backoffLimit"] == 0
    assert job_spec["ttlSecondsAfterFinished"] == 300


def test_pod_is_pinned_tolerant_and_has_no_api_access() -> None:
    pod_spec = jobs.build_job(fixed_request())["spec"]["template"]["spec"]
    assert pod_spec["nodeName"] == "node-1.example.internal"
    assert "affinity" not in pod_spec and "nodeSelector" not in pod_spec
    assert pod_spec["tolerations"] == [{"operator": "Exists"}]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["hostPID"] is False and pod_spec["hostNetwork"] is False
    assert "priorityClassName" not in pod_spec


def test_default_privilege_is_the_capability_set() -> None:
    context = container(jobs.build_job(fixed_request()))["securityContext"]
    assert context == {
        "runAsUser": 0, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["BPF", "PERFMON", "SYS_PTRACE", "SYSLOG"]},
        "seccompProfile": {"type": "Unconfined"}}
    assert "privileged" not in context


def test_privileged_fallback_allows_escalation_as_the_api_requires() -> None:
    context = container(jobs.build_job(fixed_request(privileged=True)))["securityContext"]
    assert context["privileged"] is True
    assert context["allowPrivilegeEscalation"] is True


def test_only_the_needed_host_paths_are_mounted_read_only_with_types() -> None:
    job = jobs.build_job(fixed_request())
    host_paths = {v["hostPath"]["path"]: v["hostPath"]["type"]
                  for v in job["spec"]["template"]["spec"]["volumes"] if "hostPath" in v}
    assert host_paths == {"/sys/kernel/btf": "Directory", "/proc": "Directory"}
    assert all(mount["readOnly"] for mount in container(job)["volumeMounts"])


def test_requests_equal_limits() -> None:
    resources = container(jobs.build_job(fixed_request()))["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": jobs.AGENT_CPU,
                                                            "memory": jobs.AGENT_MEMORY}


def test_sidecar_injection_is_off_and_failures_keep_their_logs() -> None:
    job = jobs.build_job(fixed_request())
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/inject"] == "false"
    assert annotations["linkerd.io/inject"] == "disabled"
    assert container(job)["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container(job)["imagePullPolicy"] == "IfNotPresent"


def test_job_and_pod_carry_session_labels_and_audit_annotations() -> None:
    job = jobs.build_job(fixed_request(targets=("shop/web", "shop/api")))
    for metadata in (job["metadata"], job["spec"]["template"]["metadata"]):
        assert metadata["labels"][labels.MANAGED_BY_KEY] == labels.MANAGED_BY
        assert metadata["labels"][labels.RUN_ID] == "k3x9q2mz"
        assert metadata["labels"][labels.GADGET] == "drops"
        assert metadata["labels"][labels.NODE] == "node-1.example.internal"
        assert metadata["labels"][labels.TARGET] == "shop.web.and-1-more"
        targets = labels.parse_targets(metadata["annotations"][labels.TARGETS_ANNOTATION])
        assert targets == ("shop/web", "shop/api")
        assert metadata["annotations"][labels.USER_ANNOTATION] == "alice@example.com"
        assert metadata["annotations"][labels.CREATED_AT_ANNOTATION] == "2026-01-01T00:00:00Z"
    assert job["metadata"]["namespace"] == "kubectl-bpf"
    assert job["metadata"]["name"] == labels.job_name("drops", "k3x9q2mz", "node-1.example.internal")


def test_pull_secrets_are_referenced_when_given() -> None:
    pod_spec = jobs.build_job(fixed_request(image_pull_secrets=("regcred",)))["spec"]["template"]["spec"]
    assert pod_spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert "imagePullSecrets" not in jobs.build_job(fixed_request())["spec"]["template"]["spec"]


def test_created_at_defaults_to_now() -> None:
    job = jobs.build_job(fixed_request(created_at=""))
    assert job["metadata"]["annotations"][labels.CREATED_AT_ANNOTATION].endswith("Z")


def test_dry_run_pod_is_the_exact_template() -> None:
    job = jobs.build_job(fixed_request())
    pod = jobs.pod_from_job(job)
    assert pod["spec"] == job["spec"]["template"]["spec"]
    assert pod["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"]
    assert pod["metadata"]["generateName"] == job["metadata"]["name"] + "-"
    assert pod["metadata"]["namespace"] == "kubectl-bpf"


# -- dry run and creation --------------------------------------------------------------------------


def test_dry_run_submits_the_pod_with_dry_run_all(kube: client.Kube, cluster: FakeCluster) -> None:
    job = jobs.build_job(fixed_request())
    jobs.dry_run_pod(kube, job)
    ((_, namespace, body, dry_run),) = cluster.called("create_namespaced_pod")
    assert (namespace, dry_run) == ("kubectl-bpf", "All")
    assert body == jobs.pod_from_job(job)


def test_pod_security_refusal_gives_the_exact_fix(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["create_namespaced_pod"] = api_error(403, POD_SECURITY_MESSAGE)
    with pytest.raises(errors.AdmissionError) as caught:
        jobs.dry_run_pod(kube, jobs.build_job(fixed_request()))
    message = str(caught.value)
    assert "\n" not in message
    assert 'violates PodSecurity "baseline:latest"' in message
    assert ("`kubectl label ns kubectl-bpf pod-security.kubernetes.io/enforce=privileged --overwrite`"
            " or `kubectl bpf setup --apply`") in message
    assert caught.value.exit_code == exitcodes.PERMISSION


def test_setup_hint_names_a_non_default_job_namespace(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.namespaces.add("tracing")
    cluster.failures["create_namespaced_pod"] = api_error(403, POD_SECURITY_MESSAGE)
    with pytest.raises(errors.AdmissionError) as caught:
        jobs.dry_run_pod(kube, jobs.build_job(fixed_request(job_namespace="tracing")))
    assert "kubectl label ns tracing pod-security" in str(caught.value)
    assert "`kubectl bpf setup --apply --job-namespace tracing`" in str(caught.value)


def test_missing_job_namespace_says_to_run_setup(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError) as caught:
        jobs.dry_run_pod(kube, jobs.build_job(fixed_request(job_namespace="absent")))
    assert str(caught.value) == ('namespace "absent" not found: create it with '
                                 "`kubectl bpf setup --apply --job-namespace absent`")


@pytest.mark.parametrize("case", [
    (403, 'pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace '
          '"kubectl-bpf"', errors.PermissionDeniedError, "cannot create resource"),
    (403, 'pods "x" is forbidden: exceeded quota: compute, requested: cpu=200m', errors.AdmissionError,
     "ResourceQuota"),
    (400, 'admission webhook "policy.example.com" denied the request: no hostPath', errors.AdmissionError,
     "admission refused"),
    (403, 'admission webhook "gatekeeper" denied the request', errors.AdmissionError, "admission refused"),
    (422, 'Pod "x" is invalid: spec.containers[0].image: Required value', errors.KubeError, "is invalid"),
])
def test_other_refusals_are_classified(kube: client.Kube, cluster: FakeCluster,
                                       case: tuple[int, str, type[errors.KubeError], str]) -> None:
    status, message, error, text = case
    cluster.failures["create_namespaced_pod"] = api_error(status, message)
    with pytest.raises(error, match=text) as caught:
        jobs.dry_run_pod(kube, jobs.build_job(fixed_request()))
    assert type(caught.value) is error


def test_create_job_returns_the_uid(kube: client.Kube, cluster: FakeCluster) -> None:
    job = jobs.build_job(fixed_request())
    assert jobs.create_job(kube, job) == "uid-created"
    assert cluster.called("create_namespaced_job")[0][1:] == ("kubectl-bpf", job)


def test_create_job_refusals_are_classified_like_the_dry_run(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["create_namespaced_job"] = api_error(403, 'jobs.batch is forbidden: User "bob" cannot '
                                                               'create resource "jobs"')
    with pytest.raises(errors.PermissionDeniedError):
        jobs.create_job(kube, jobs.build_job(fixed_request()))


# -- finding and deleting --------------------------------------------------------------------------


def test_delete_job_propagates_in_the_background_and_ignores_gone(kube: client.Kube,
                                                                  cluster: FakeCluster) -> None:
    cluster.add_job(job_json("kubectl-bpf-drops-a"))
    assert jobs.delete_job(kube, "kubectl-bpf", "kubectl-bpf-drops-a") is True
    assert cluster.called("delete_namespaced_job")[0][3] == {"propagationPolicy": "Background"}
    assert jobs.delete_job(kube, "kubectl-bpf", "kubectl-bpf-drops-a") is False
    assert not cluster.called("delete_namespaced_pod")


def test_forced_delete_kills_the_pods_too(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(job_json("kubectl-bpf-drops-a"))
    cluster.add_pod(pod_json("kubectl-bpf-drops-a-x1", namespace="kubectl-bpf",
                             labels={"job-name": "kubectl-bpf-drops-a"}))
    cluster.add_pod(pod_json("unrelated", namespace="kubectl-bpf", labels={"job-name": "other"}))
    jobs.delete_job(kube, "kubectl-bpf", "kubectl-bpf-drops-a", grace_period_s=0)
    assert cluster.called("delete_namespaced_pod") == [
        ("delete_namespaced_pod", "kubectl-bpf", "kubectl-bpf-drops-a-x1", {"gracePeriodSeconds": 0})]


def test_delete_failure_other_than_gone_is_reported(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["delete_namespaced_job"] = api_error(403, "jobs.batch is forbidden")
    with pytest.raises(errors.PermissionDeniedError, match='deleting job "x"'):
        jobs.delete_job(kube, "kubectl-bpf", "x")


def test_find_jobs_by_selector_oldest_first(kube: client.Kube, cluster: FakeCluster) -> None:
    session = {labels.MANAGED_BY_KEY: labels.MANAGED_BY, labels.RUN_ID: "abc"}
    cluster.add_job(job_json("b", labels=session, created="2026-01-01T00:00:02Z", active=1))
    cluster.add_job(job_json("a", labels=session, created="2026-01-01T00:00:05Z", finished="Complete",
                             succeeded=1))
    cluster.add_job(job_json("c", labels={labels.MANAGED_BY_KEY: labels.MANAGED_BY, labels.RUN_ID: "zzz"}))
    found = jobs.find_jobs(kube, "kubectl-bpf", labels.run_selector("abc"))
    assert [(j.name, j.active, j.finished) for j in found] == [("b", 1, None), ("a", 0, "Complete")]
    assert found[0].deadline_s == 600
    assert found[0].labels[labels.RUN_ID] == "abc"


def test_job_pod_is_the_newest_pod_of_the_job(kube: client.Kube, cluster: FakeCluster) -> None:
    assert jobs.job_pod(kube, "kubectl-bpf", "j") is None
    cluster.add_pod(pod_json("j-old", namespace="kubectl-bpf", labels={"job-name": "j"},
                             created="2026-01-01T00:00:00Z"))
    cluster.add_pod(pod_json("j-new", namespace="kubectl-bpf", labels={"job-name": "j"},
                             created="2026-01-01T00:01:00Z"))
    assert jobs.job_pod(kube, "kubectl-bpf", "j").metadata.name == "j-new"


# -- RBAC pre-check --------------------------------------------------------------------------------


def test_access_check_passes_when_everything_is_allowed(kube: client.Kube, cluster: FakeCluster) -> None:
    jobs.check_access(kube, "kubectl-bpf", target_namespaces=["shop", "shop"])
    calls = cluster.called("create_self_subject_access_review")
    reviews = [body["spec"]["resourceAttributes"] for _, body in calls]
    asked = {(r["verb"], r["resource"], r.get("subresource", ""), r["namespace"]) for r in reviews}
    assert asked == {("create", "pods", "", "kubectl-bpf"), ("create", "jobs", "", "kubectl-bpf"),
                     ("watch", "pods", "", "kubectl-bpf"), ("get", "pods", "log", "kubectl-bpf"),
                     ("patch", "pods", "", "kubectl-bpf"), ("delete", "jobs", "", "kubectl-bpf"),
                     ("get", "pods", "", "shop")}


def test_access_check_names_every_missing_permission(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.denied_access |= {("create", "jobs", "kubectl-bpf"), ("get", "pods/log", "kubectl-bpf")}
    with pytest.raises(errors.PermissionDeniedError) as caught:
        jobs.check_access(kube, "kubectl-bpf")
    assert str(caught.value).startswith(
        'missing permissions: create jobs.batch in namespace "kubectl-bpf"; '
        'get pods/log in namespace "kubectl-bpf" (')
    assert caught.value.exit_code == exitcodes.PERMISSION


def test_access_check_that_cannot_ask_does_not_block(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["create_self_subject_access_review"] = api_error(404, "not served")
    jobs.check_access(kube, "kubectl-bpf")
