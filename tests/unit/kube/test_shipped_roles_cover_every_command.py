"""The shipped roles (manifests/rbac.yaml, `kubectl bpf setup`) grant every
permission any command checks up front, and each command names every
missing permission at once instead of failing on one call per run."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kubectl_bpf.kube import admin, client, errors, jobs, listing
from kubectl_bpf.protocol import exitcodes
from tests.unit.kube.conftest import FakeCluster

JOB_NAMESPACE = "kubectl-bpf"

# Every command's up-front check; policy-test, drops and tcp also run a session.
COMMAND_ACCESS: dict[str, Sequence[jobs.Access]] = {
    "drops/tcp session": jobs.required_access(JOB_NAMESPACE, ["shop"]),
    "policy-test": [*listing.INVENTORY_ACCESS, *jobs.required_access(JOB_NAMESPACE, ["shop"])],
    "list": admin.list_access(JOB_NAMESPACE),
    "gc": admin.gc_access(JOB_NAMESPACE),
}


def granted(kind: str) -> set[tuple[str, str, str]]:
    role = next(obj for obj in admin.setup_objects(JOB_NAMESPACE) if obj["kind"] == kind)
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


@pytest.mark.parametrize("command", list(COMMAND_ACCESS))
def test_the_shipped_roles_grant_everything_a_command_checks(command: str) -> None:
    cluster_wide, in_job_namespace = granted("ClusterRole"), granted("Role")
    for access in COMMAND_ACCESS[command]:
        key = (access.group, access.resource + (f"/{access.subresource}" if access.subresource else ""),
               access.verb)
        by_role = access.namespace == JOB_NAMESPACE and key in in_job_namespace
        assert by_role or key in cluster_wide, f"{command}: {access}"


def test_policy_tests_cluster_wide_reads_are_named_together(kube: client.Kube, cluster: FakeCluster) -> None:
    """What the shipped role used to lack, both in one line (it took two runs)."""
    cluster.denied_access |= {("list", "namespaces", ""), ("list", "networkpolicies", "")}
    with pytest.raises(errors.PermissionDeniedError) as caught:
        jobs.check_permissions(kube, COMMAND_ACCESS["policy-test"])
    assert str(caught.value).startswith('missing permissions: list namespaces in all namespaces; '
                                        'list networkpolicies.networking.k8s.io in all namespaces (')
    assert caught.value.exit_code == exitcodes.PERMISSION


@pytest.mark.parametrize("command", ["list", "gc"])
def test_list_and_gc_check_before_reading(command: str, kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.denied_access |= {("list", "jobs", JOB_NAMESPACE), ("list", "pods", JOB_NAMESPACE)}
    with pytest.raises(errors.PermissionDeniedError) as caught:
        admin.list_sessions(kube, JOB_NAMESPACE) if command == "list" else admin.gc(kube, JOB_NAMESPACE)
    assert "list jobs.batch" in str(caught.value) and "list pods" in str(caught.value)
    assert not [call for call in cluster.calls if call[0].startswith(("list_namespaced", "delete"))]
