"""Housekeeping around sessions: ``list`` what runs, ``gc`` what was left
behind, and ``setup`` the job namespace and RBAC that everything else needs.

``setup_objects`` is the single source of the namespace and RBAC: the YAML
in ``manifests/`` is generated from it and a unit test keeps them equal.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Callable, Optional

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from kubectl_bpf.kube import client, errors, jobs, labels, logs

USER_ROLE = "kubectl-bpf-user"  # ClusterRole (targets, cluster-wide) and Role (job namespace)
USER_GROUP = "kubectl-bpf-users"  # the example bindings' subject: add people to it, or edit
PRIVILEGED = "privileged"
POD_SECURITY_MODES = ("enforce", "audit", "warn")

RUNNING = "Running"
PENDING = "Pending"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
TERMINATING = "Terminating"
# The pod still runs but its client has not renewed the lease for longer than
# the agent's TTL: the client is gone (killed, or cut off from the API server)
# and the agent is stopping by itself. Nobody reads it: gc removes it.
LEASE_EXPIRED = "LeaseExpired"
FINISHED_STATES = (SUCCEEDED, FAILED, LEASE_EXPIRED)


@dataclasses.dataclass(frozen=True)
class Session:
    """One tracer Job, as ``kubectl bpf list`` shows it (a session with
    several nodes has one row per node, sharing run_id)."""

    run_id: str
    gadget: str
    node: str
    targets: tuple[str, ...]
    user: str
    host: str
    created: Optional[datetime.datetime]
    age_s: float
    state: str  # Pending, Running, LeaseExpired, Succeeded, Failed, Terminating
    job_name: str
    pod_name: Optional[str]
    stopped_by: Optional[str] = None  # a finished agent's summary says why (duration, lease-expired, ...)


@dataclasses.dataclass(frozen=True)
class GcResult:
    """What ``gc`` deleted, as ``namespace/name``."""

    jobs: tuple[str, ...]
    pods: tuple[str, ...]


def list_sessions(kube: client.Kube, job_namespace: str, *,
                  now: Optional[datetime.datetime] = None) -> list[Session]:
    """Every tracer Job in the namespace with its state, oldest first."""
    jobs.check_permissions(kube, list_access(job_namespace))
    now = now or _now()
    pods = _managed_pods(kube, job_namespace)
    infos = jobs.find_jobs(kube, job_namespace, labels.managed_selector())
    sessions = [_session(info, pods, now) for info in infos]
    return [dataclasses.replace(s, stopped_by=_stopped_by(kube, job_namespace, s.pod_name))
            if s.state in (SUCCEEDED, FAILED) and s.pod_name else s for s in sessions]


def list_access(job_namespace: str) -> list[jobs.Access]:
    """What ``kubectl bpf list`` reads."""
    return [jobs.Access("list", "jobs", job_namespace, group="batch"),
            jobs.Access("list", "pods", job_namespace)]


def gc_access(job_namespace: str) -> list[jobs.Access]:
    """What ``kubectl bpf gc`` reads and removes."""
    return [*list_access(job_namespace), jobs.Access("delete", "jobs", job_namespace, group="batch"),
            jobs.Access("delete", "pods", job_namespace)]


def gc(kube: client.Kube, job_namespace: str, *, all_sessions: bool = False,
       older_than_s: Optional[float] = None, now: Optional[datetime.datetime] = None) -> GcResult:
    """Delete what no live client needs: finished Jobs, Jobs past their own
    deadline (the controller should have failed them), Jobs older than
    ``older_than_s`` if given, every Job with ``all_sessions``, and pods
    labelled managed-by whose Job is gone. A running session of another
    user is left alone unless ``all_sessions`` or ``older_than_s`` says so."""
    jobs.check_permissions(kube, gc_access(job_namespace))
    now = now or _now()
    pods = _managed_pods(kube, job_namespace)
    deleted_jobs: list[str] = []
    live_jobs: set[str] = set()
    for info in jobs.find_jobs(kube, job_namespace, labels.managed_selector()):
        # A pod that finished (or whose client is gone) is collectable even
        # while the Job controller has not marked the Job finished yet: with
        # the API server down for a while, it lagged for minutes.
        if _session(info, pods, now).state in FINISHED_STATES or _collectable(
                info, now, all_sessions=all_sessions, older_than_s=older_than_s):
            # Grace 0: nothing reads these pods any more, and a stuck agent must not linger.
            jobs.delete_job(kube, job_namespace, info.name, grace_period_s=0)
            deleted_jobs.append(f"{job_namespace}/{info.name}")
        else:
            live_jobs.add(info.name)
    deleted_pods: list[str] = []
    for pod in pods:
        owner = (pod.metadata.labels or {}).get(labels.JOB_NAME_LABEL)
        if owner in live_jobs or f"{job_namespace}/{owner}" in deleted_jobs:
            continue  # deleted with its Job, or still in use
        if jobs.delete_pod(kube, job_namespace, pod.metadata.name, grace_period_s=0):
            deleted_pods.append(f"{job_namespace}/{pod.metadata.name}")
    return GcResult(jobs=tuple(deleted_jobs), pods=tuple(deleted_pods))


def setup_objects(job_namespace: str = jobs.DEFAULT_JOB_NAMESPACE) -> list[dict[str, Any]]:
    """The namespace the tracer runs in (PodSecurity privileged) and least-
    privilege RBAC for people who run the plugin, in apply order."""
    managed = {labels.MANAGED_BY_KEY: labels.MANAGED_BY}
    namespace = {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": job_namespace, "labels": {
            **{f"pod-security.kubernetes.io/{mode}": PRIVILEGED for mode in POD_SECURITY_MODES},
            **managed}},
    }
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": USER_ROLE, "labels": dict(managed)},
        "rules": [
            # Resolving targets; list across namespaces names the peers of drops (optional)
            # and is policy-test's inventory.
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            # get: "namespace not found" vs "pod not found"; list: policy-test's inventory.
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]},
            # policy-test evaluates every NetworkPolicy of the cluster.
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list"]},
            # node/NAME targets, the Windows check and the Ready warning; list: completion.
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
            # get: workload targets; list: completion of deploy/NAME, sts/NAME, ds/NAME.
            {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"],
             "verbs": ["get", "list"]},
        ],
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": USER_ROLE, "namespace": job_namespace, "labels": dict(managed)},
        "rules": [
            {"apiGroups": ["batch"], "resources": ["jobs"],
             "verbs": ["create", "delete", "get", "list", "watch"]},
            # create: the server-side dry run of the tracer pod; patch: the lease; delete: gc.
            {"apiGroups": [""], "resources": ["pods"],
             "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        ],
    }
    subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": USER_GROUP}]
    cluster_role_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": USER_ROLE, "labels": dict(managed)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER_ROLE},
        "subjects": [dict(subject) for subject in subjects],
    }
    role_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": USER_ROLE, "namespace": job_namespace, "labels": dict(managed)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": USER_ROLE},
        "subjects": [dict(subject) for subject in subjects],
    }
    return [namespace, cluster_role, cluster_role_binding, role, role_binding]


def apply_setup(kube: client.Kube, job_namespace: str = jobs.DEFAULT_JOB_NAMESPACE) -> list[str]:
    """Create or update every setup object; returns ``kind/name created`` or
    ``kind/name configured`` lines. The namespace is patched, not replaced,
    so labels others put on it survive; RBAC objects are replaced whole."""
    done = []
    for obj in setup_objects(job_namespace):
        kind, name = obj["kind"], obj["metadata"]["name"]
        create, update = _operations(kube, obj)
        try:
            create()
            done.append(f"{kind.lower()}/{name} created")
            continue
        except ApiException as exc:
            if exc.status != 409:
                raise errors.from_api_exception(exc, f"creating {kind.lower()}/{name}") from exc
        try:
            update()
        except ApiException as exc:
            raise errors.from_api_exception(exc, f"updating {kind.lower()}/{name}") from exc
        done.append(f"{kind.lower()}/{name} configured")
    return done


def rbac_api(kube: client.Kube) -> Any:
    """RbacAuthorizationV1Api on the session's connection (Kube has no handle
    for it: only setup uses it)."""
    return k8s.RbacAuthorizationV1Api(kube.api)


def _operations(kube: client.Kube, obj: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace")
    options = kube.call_options()
    if kind == "Namespace":
        return (lambda: kube.core.create_namespace(obj, **options),
                lambda: kube.core.patch_namespace(name, {"metadata": {"labels": obj["metadata"]["labels"]}},
                                                  **options))
    rbac = rbac_api(kube)
    if kind == "ClusterRole":
        return (lambda: rbac.create_cluster_role(obj, **options),
                lambda: rbac.replace_cluster_role(name, obj, **options))
    if kind == "ClusterRoleBinding":
        return (lambda: rbac.create_cluster_role_binding(obj, **options),
                lambda: rbac.replace_cluster_role_binding(name, obj, **options))
    if kind == "Role":
        return (lambda: rbac.create_namespaced_role(namespace, obj, **options),
                lambda: rbac.replace_namespaced_role(name, namespace, obj, **options))
    if kind == "RoleBinding":
        return (lambda: rbac.create_namespaced_role_binding(namespace, obj, **options),
                lambda: rbac.replace_namespaced_role_binding(name, namespace, obj, **options))
    raise ValueError(f"no API call for kind {kind}")


def _collectable(info: jobs.JobInfo, now: datetime.datetime, *, all_sessions: bool,
                 older_than_s: Optional[float]) -> bool:
    if all_sessions or info.finished is not None:
        return True
    age = _age_s(info.created, now)
    if info.deadline_s is not None and age > info.deadline_s:
        return True
    return older_than_s is not None and age > older_than_s


def _session(info: jobs.JobInfo, pods: list[Any], now: datetime.datetime) -> Session:
    own = sorted((pod for pod in pods if (pod.metadata.labels or {}).get(labels.JOB_NAME_LABEL) == info.name),
                 key=lambda pod: pod.metadata.creation_timestamp or _EPOCH)
    pod = own[-1] if own else None
    return Session(
        run_id=info.labels.get(labels.RUN_ID, ""), gadget=info.labels.get(labels.GADGET, ""),
        node=info.labels.get(labels.NODE, ""),
        targets=labels.parse_targets(info.annotations.get(labels.TARGETS_ANNOTATION)),
        user=info.annotations.get(labels.USER_ANNOTATION, ""),
        host=info.annotations.get(labels.HOST_ANNOTATION, ""),
        created=info.created, age_s=_age_s(info.created, now), state=_state(info, pod, now),
        job_name=info.name, pod_name=pod.metadata.name if pod is not None else None)


def _state(info: jobs.JobInfo, pod: Optional[Any], now: datetime.datetime) -> str:
    if info.finished == "Complete" or (info.finished is None and info.succeeded and not info.active):
        return SUCCEEDED
    if info.finished == "Failed" or (info.finished is None and info.failed and not info.active):
        return FAILED
    if pod is None:
        return PENDING
    phase = pod.status.phase if pod.status is not None else None
    if phase in (SUCCEEDED, FAILED):  # the agent ended; the Job controller has not caught up
        return str(phase)
    if pod.metadata.deletion_timestamp is not None:
        return TERMINATING
    if phase == "Running" and _lease_expired(pod, now):
        return LEASE_EXPIRED
    return RUNNING if phase == "Running" else PENDING


def _lease_expired(pod: Any, now: datetime.datetime) -> bool:
    """The lease annotation holds the time of the client's last renewal
    (session.py; the agent only compares values), the agent's command its
    TTL. Pods of older clients (a bare counter) or unreadable specs: no claim.
    Another machine wrote the time: clock skew counts against the TTL."""
    annotations = pod.metadata.annotations or {}
    try:
        renewed = datetime.datetime.fromisoformat(
            str(annotations.get(labels.LEASE_ANNOTATION, "")).replace("Z", "+00:00"))
    except ValueError:
        renewed = None
    if renewed is None:
        renewed = pod.status.start_time if pod.status is not None else None
        if annotations.get(labels.LEASE_ANNOTATION) != labels.LEASE_INITIAL or renewed is None:
            return False
    ttl_s = _lease_ttl_s(pod)
    return ttl_s is not None and (now - renewed).total_seconds() > ttl_s


def _lease_ttl_s(pod: Any) -> Optional[float]:
    for container in (pod.spec.containers if pod.spec is not None else None) or ():
        command = list(container.command or ())
        if container.name == jobs.CONTAINER_NAME and "--spec" in command[:-1]:
            try:
                return float(json.loads(command[command.index("--spec") + 1])["lease_ttl_s"])
            except (ValueError, KeyError, TypeError):
                return None
    return None


def _stopped_by(kube: client.Kube, namespace: str, pod: str) -> Optional[str]:
    """Why a finished agent stopped, from the summary near the end of its
    log; None when the log is gone or has no summary."""
    for line in reversed(logs.tail_lines(kube, namespace, pod, lines=5)):
        if '"summary"' in line:
            try:
                return str(json.loads(line[line.index("{"):]).get("stopped_by"))
            except ValueError:
                return None
    return None


def _managed_pods(kube: client.Kube, namespace: str) -> list[Any]:
    try:
        result = kube.core.list_namespaced_pod(namespace, label_selector=labels.managed_selector(),
                                               **kube.call_options())
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise errors.from_api_exception(exc, f"listing pods in namespace \"{namespace}\"") from exc
    return list(result.items or ())


def _age_s(created: Optional[datetime.datetime], now: datetime.datetime) -> float:
    return max(0.0, (now - created).total_seconds()) if created is not None else 0.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
