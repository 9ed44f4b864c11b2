"""``list`` shows each tracer Job's state, ``gc`` removes only what no live
session needs (or everything with --all), and ``setup`` objects are exactly
the YAML in manifests/.

After an intended change to admin.setup_objects, regenerate manifests/ with
``UPDATE_GOLDEN=1 pytest tests/unit/kube`` and review the diff.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
from typing import Any

import pytest
import yaml

from kubectl_bpf.kube import admin, client, errors, jobs, labels

from .conftest import FakeCluster, FakeRbac, api_error, job_json, pod_json

MANIFESTS = pathlib.Path(__file__).parents[3] / "manifests"
NOW = datetime.datetime(2026, 1, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
NS = jobs.DEFAULT_JOB_NAMESPACE
HEADERS = {
    "namespace.yaml": (
        "# The namespace kubectl-bpf runs its tracer Jobs in. PodSecurity is \"privileged\" because the\n"
        "# tracer mounts host paths (/proc, /sys/kernel/btf) and adds BPF capabilities; nothing else\n"
        "# should run here.\n"),
    "rbac.yaml": (
        "# Least privilege for people who run `kubectl bpf`: read targets cluster-wide (ClusterRole),\n"
        "# run tracer Jobs in the kubectl-bpf namespace (Role). The bindings grant both to the group\n"
        "# kubectl-bpf-users: add people to that group, or edit the subjects.\n"),
}
GENERATED = ("# Generated from kubectl_bpf/kube/admin.py setup_objects() (`kubectl bpf setup --print`);\n"
             "# tests/unit/kube/test_admin_lists_collects_and_sets_up.py keeps them equal.\n")


def session_job(name: str, *, run_id: str = "abc", node: str = "n1", **fields: Any) -> dict[str, Any]:
    return job_json(name, labels={labels.MANAGED_BY_KEY: labels.MANAGED_BY, labels.RUN_ID: run_id,
                                  labels.GADGET: "drops", labels.NODE: node},
                    annotations={labels.TARGETS_ANNOTATION: '["shop/web"]',
                                 labels.USER_ANNOTATION: "alice@example.com",
                                 labels.HOST_ANNOTATION: "laptop"},
                    **fields)


def tracer_pod(name: str, job: str, **fields: Any) -> dict[str, Any]:
    return pod_json(name, namespace=NS, labels={labels.MANAGED_BY_KEY: labels.MANAGED_BY,
                                                labels.JOB_NAME_LABEL: job}, **fields)


# -- list ------------------------------------------------------------------------------------------


def test_sessions_show_run_node_targets_user_age_and_state(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(session_job("j-running", created="2026-01-01T00:59:00Z", active=1))
    cluster.add_pod(tracer_pod("j-running-x", "j-running"))
    cluster.add_job(session_job("j-pending", created="2026-01-01T00:59:30Z", active=1))
    cluster.add_pod(tracer_pod("j-pending-x", "j-pending", phase="Pending"))
    cluster.add_job(session_job("j-new", created="2026-01-01T00:59:50Z", active=1))
    cluster.add_job(session_job("j-done", created="2026-01-01T00:30:00Z", succeeded=1, finished="Complete"))
    cluster.add_job(session_job("j-failed", created="2026-01-01T00:20:00Z", failed=1, finished="Failed"))
    cluster.add_job(session_job("j-stopping", created="2026-01-01T00:10:00Z", active=1))
    cluster.add_pod(tracer_pod("j-stopping-x", "j-stopping", deleting=True))
    cluster.add_job(job_json("not-ours", labels={"app": "other"}))
    sessions = admin.list_sessions(kube, NS, now=NOW)
    assert [(s.job_name, s.state) for s in sessions] == [
        ("j-stopping", admin.TERMINATING), ("j-failed", admin.FAILED), ("j-done", admin.SUCCEEDED),
        ("j-running", admin.RUNNING), ("j-pending", admin.PENDING), ("j-new", admin.PENDING)]
    running = sessions[3]
    assert running == admin.Session(
        run_id="abc", gadget="drops", node="n1", targets=("shop/web",), user="alice@example.com",
        host="laptop",
        created=datetime.datetime(2026, 1, 1, 0, 59, tzinfo=datetime.timezone.utc), age_s=60.0,
        state="Running", job_name="j-running", pod_name="j-running-x")


def leased_pod(name: str, job: str, *, renewed: str, ttl_s: float = 60.0, **fields: Any) -> dict[str, Any]:
    """A tracer pod as a session leaves it: the agent's command with its
    lease TTL, the lease annotation holding the last renewal time."""
    pod = tracer_pod(name, job, **fields)
    pod["metadata"].setdefault("annotations", {})[labels.LEASE_ANNOTATION] = renewed
    agent_spec = json.dumps({"gadget": "drops", "lease_ttl_s": ttl_s})
    pod["spec"]["containers"] = [{"name": jobs.CONTAINER_NAME, "image": "x", "command": [
        "python3", "-m", "kubectl_bpf.agent", "--spec", agent_spec]}]
    pod["status"]["startTime"] = "2026-01-01T00:58:00Z"
    return pod


def test_a_finished_pod_of_a_job_not_yet_marked_finished_is_listed_and_collected(
        kube: client.Kube, cluster: FakeCluster) -> None:
    """The Job controller lagged minutes behind after an API server outage:
    Job Running 0/1, pod Completed. It is finished, and gc removes it."""
    cluster.add_job(session_job("j-lagging", created="2026-01-01T00:59:00Z", active=1, deadline_s=3720))
    cluster.add_pod(tracer_pod("j-lagging-x", "j-lagging", phase="Succeeded"))
    assert [s.state for s in admin.list_sessions(kube, NS, now=NOW)] == [admin.SUCCEEDED]
    assert admin.gc(kube, NS, now=NOW).jobs == (f"{NS}/j-lagging",)
    assert not cluster.jobs


def test_a_running_agent_whose_lease_lapsed_is_lease_expired_and_collected(
        kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(session_job("j-orphan", created="2026-01-01T00:58:00Z", active=1, deadline_s=3720))
    cluster.add_pod(leased_pod("j-orphan-x", "j-orphan", renewed="2026-01-01T00:58:30.000+00:00"))
    cluster.add_job(session_job("j-alive", created="2026-01-01T00:58:00Z", active=1, deadline_s=3720))
    cluster.add_pod(leased_pod("j-alive-x", "j-alive", renewed="2026-01-01T00:59:55.000+00:00"))
    cluster.add_job(session_job("j-young", created="2026-01-01T00:58:00Z", active=1, deadline_s=3720))
    cluster.add_pod(leased_pod("j-young-x", "j-young", renewed=labels.LEASE_INITIAL, ttl_s=600))
    states = {s.job_name: s.state for s in admin.list_sessions(kube, NS, now=NOW)}
    assert states == {"j-orphan": admin.LEASE_EXPIRED, "j-alive": admin.RUNNING, "j-young": admin.RUNNING}
    assert admin.gc(kube, NS, now=NOW).jobs == (f"{NS}/j-orphan",)
    assert set(cluster.jobs) == {(NS, "j-alive"), (NS, "j-young")}


def test_no_namespace_means_no_sessions(kube: client.Kube) -> None:
    assert admin.list_sessions(kube, "absent", now=NOW) == []


# -- gc --------------------------------------------------------------------------------------------


def test_gc_removes_finished_and_expired_but_keeps_live_sessions(kube: client.Kube,
                                                                 cluster: FakeCluster) -> None:
    cluster.add_job(session_job("live", created="2026-01-01T00:59:00Z", active=1, deadline_s=3720))
    cluster.add_pod(tracer_pod("live-x", "live"))
    cluster.add_job(session_job("done", created="2026-01-01T00:58:00Z", succeeded=1, finished="Complete"))
    cluster.add_pod(tracer_pod("done-x", "done", phase="Succeeded"))
    cluster.add_job(session_job("stuck", created="2026-01-01T00:00:00Z", active=1, deadline_s=600))
    cluster.add_pod(tracer_pod("orphan", "deleted-long-ago"))
    cluster.add_pod(pod_json("bystander", namespace=NS, labels={"app": "other"}))
    result = admin.gc(kube, NS, now=NOW)
    assert result == admin.GcResult(jobs=(f"{NS}/stuck", f"{NS}/done"), pods=(f"{NS}/orphan",))
    assert set(cluster.jobs) == {(NS, "live")}
    assert (NS, "live-x") in cluster.pods and (NS, "bystander") in cluster.pods
    assert all(call[3] == {"gracePeriodSeconds": 0} for call in cluster.called("delete_namespaced_pod"))


def test_gc_older_than_removes_old_running_sessions(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(session_job("old", created="2026-01-01T00:00:00Z", active=1, deadline_s=None))
    cluster.add_job(session_job("young", created="2026-01-01T00:59:00Z", active=1, deadline_s=None))
    assert admin.gc(kube, NS, older_than_s=1800, now=NOW).jobs == (f"{NS}/old",)
    assert admin.gc(kube, NS, now=NOW).jobs == ()


def test_gc_all_removes_every_session(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(session_job("a", created="2026-01-01T00:59:00Z", active=1))
    cluster.add_job(session_job("b", run_id="def", created="2026-01-01T00:59:00Z", active=1))
    cluster.add_job(job_json("not-ours", labels={"app": "other"}))
    assert admin.gc(kube, NS, all_sessions=True, now=NOW).jobs == (f"{NS}/a", f"{NS}/b")
    assert set(cluster.jobs) == {(NS, "not-ours")}


def test_gc_of_nothing_deletes_nothing(kube: client.Kube, cluster: FakeCluster) -> None:
    assert admin.gc(kube, NS, all_sessions=True, now=NOW) == admin.GcResult(jobs=(), pods=())
    assert not cluster.called("delete_namespaced_job")


def test_gc_tolerates_objects_vanishing_meanwhile(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_job(session_job("done", succeeded=1, finished="Complete"))
    cluster.failures["delete_namespaced_job"] = api_error(404, "gone")
    assert admin.gc(kube, NS, now=NOW).jobs == (f"{NS}/done",)


# -- setup -----------------------------------------------------------------------------------------


def manifest_objects() -> list[dict[str, Any]]:
    found = []
    for name in ("namespace.yaml", "rbac.yaml"):
        found += [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text(encoding="utf-8")) if doc]
    return found


def test_manifests_are_exactly_the_setup_objects() -> None:
    objects = admin.setup_objects()
    if os.environ.get("UPDATE_GOLDEN"):
        (MANIFESTS / "namespace.yaml").write_text(
            HEADERS["namespace.yaml"] + GENERATED + yaml.safe_dump(objects[0], sort_keys=False),
            encoding="utf-8")
        (MANIFESTS / "rbac.yaml").write_text(
            HEADERS["rbac.yaml"] + GENERATED + yaml.safe_dump_all(objects[1:], sort_keys=False),
            encoding="utf-8")
    assert manifest_objects() == objects


def test_every_top_level_manifest_is_a_kubernetes_object() -> None:
    # hack/local-cluster applies manifests/*.yaml (not sub-directories such as krew/).
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path


def test_job_namespace_allows_privileged_pods() -> None:
    namespace = admin.setup_objects("tracing")[0]
    assert namespace["metadata"]["name"] == "tracing"
    for mode in ("enforce", "audit", "warn"):
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == "privileged"


def test_role_grants_what_a_session_checks_for() -> None:
    role = next(obj for obj in admin.setup_objects() if obj["kind"] == "Role")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for access in jobs.required_access(NS):
        resource = access.resource + (f"/{access.subresource}" if access.subresource else "")
        assert (access.group, resource, access.verb) in granted, access


def test_cluster_role_only_reads() -> None:
    cluster_role = next(obj for obj in admin.setup_objects() if obj["kind"] == "ClusterRole")
    verbs = {verb for rule in cluster_role["rules"] for verb in rule["verbs"]}
    assert verbs <= {"get", "list"}


def test_bindings_point_at_the_roles_in_the_job_namespace() -> None:
    objects = {obj["kind"]: obj for obj in admin.setup_objects("tracing")}
    assert objects["Role"]["metadata"]["namespace"] == "tracing"
    assert objects["RoleBinding"]["metadata"]["namespace"] == "tracing"
    assert objects["RoleBinding"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                 "name": admin.USER_ROLE}
    assert objects["ClusterRoleBinding"]["roleRef"]["kind"] == "ClusterRole"


@pytest.fixture
def rbac(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> FakeRbac:
    fake = FakeRbac(cluster)
    monkeypatch.setattr(admin, "rbac_api", lambda kube: fake)
    return fake


def test_apply_setup_creates_then_updates(kube: client.Kube, cluster: FakeCluster, rbac: FakeRbac) -> None:
    cluster.namespaces.discard(NS)
    assert admin.apply_setup(kube) == [
        f"namespace/{NS} created", "clusterrole/kubectl-bpf-user created",
        "clusterrolebinding/kubectl-bpf-user created", "role/kubectl-bpf-user created",
        "rolebinding/kubectl-bpf-user created"]
    assert admin.apply_setup(kube) == [
        f"namespace/{NS} configured", "clusterrole/kubectl-bpf-user configured",
        "clusterrolebinding/kubectl-bpf-user configured", "role/kubectl-bpf-user configured",
        "rolebinding/kubectl-bpf-user configured"]
    ((_, name, patch),) = cluster.called("patch_namespace")
    assert name == NS
    assert patch == {"metadata": {"labels": admin.setup_objects()[0]["metadata"]["labels"]}}
    assert cluster.rbac[("Role", NS, admin.USER_ROLE)] == admin.setup_objects()[3]


def test_apply_setup_reports_refusals(kube: client.Kube, cluster: FakeCluster, rbac: FakeRbac) -> None:
    cluster.failures["create_namespace"] = api_error(403, 'namespaces is forbidden: User "bob" cannot create')
    with pytest.raises(errors.PermissionDeniedError, match="creating namespace/kubectl-bpf: forbidden"):
        admin.apply_setup(kube)
