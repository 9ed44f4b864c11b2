"""The tracer Job: built as plain data (``build_job``, pure, golden-tested and
printed by ``--dry-run -o yaml``), then checked, created, found and deleted
through thin API calls.

Every choice in the pod spec answers a failure seen in peer tools (field
notes §1): pinned with nodeName, every taint tolerated, no service-account
token, sidecar injection off, only the host mounts the agent reads, each with
an explicit type, and a deadline so no privileged pod outlives its purpose.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import math
from collections.abc import Sequence
from typing import Any, Optional

import urllib3.exceptions
from kubernetes.client.rest import ApiException

from kubectl_bpf.kube import client, errors, labels
from kubectl_bpf.protocol import spec

DEFAULT_JOB_NAMESPACE = "kubectl-bpf"
CONTAINER_NAME = "agent"
HOST_PROC = "/host/proc"  # the host's /proc: the agent scans it for container PIDs
BTF_DIR = "/sys/kernel/btf"
PODINFO_DIR = "/etc/kubectl-bpf/podinfo"
LEASE_FILE = f"{PODINFO_DIR}/annotations"  # downwardAPI metadata.annotations (agent/lease.py)

# What the agent needs without --privileged, measured in a pod (drop ALL, add
# one set at a time): BPF + PERFMON to load and attach (5.8+), SYS_PTRACE to
# open /proc/<pid>/ns/net of other containers, SYSLOG for real addresses in
# /proc/kallsyms (without it locations are bare hex). Not SYS_ADMIN.
AGENT_CAPABILITIES = ("BPF", "PERFMON", "SYS_PTRACE", "SYSLOG")
# Per agent gadget, on top of AGENT_CAPABILITIES. The probe gadget enters the
# source pod's netns with setns(2), which needs CAP_SYS_ADMIN (over the netns's
# owning user namespace, here the host's); the drops gadget only reads. The
# dns gadget enters each target's netns the same way to open a packet socket
# there (AF_PACKET: NET_RAW).
GADGET_CAPABILITIES: dict[str, tuple[str, ...]] = {"probe": ("SYS_ADMIN",), "dns": ("SYS_ADMIN", "NET_RAW")}
# containerd 1.6.20's RuntimeDefault allowed bpf() with CAP_BPF in our test,
# but Docker's default profile (and runtimes that copied it) refuse bpf()
# without CAP_SYS_ADMIN; Unconfined costs less privilege than SYS_ADMIN.
SECCOMP_PROFILE = {"type": "Unconfined"}
# Requests = limits (Guaranteed QoS: the kubelet evicts it last). Measured in
# a pod (bench/cluster_latency.py): pod creation to ready 1.0 s at 500m, 1.5 s
# at 250m, 3.5 s at 100m; 250m is used up streaming ~20k events/s, and the
# first drop waited 0.6 s for the kallsyms table. Memory: the pod's cgroup
# peaked at 56 MiB streaming 20k events/s (after the ifname-cache leak fix,
# the agent stays near 45 MB under any flood).
AGENT_CPU = "500m"
AGENT_MEMORY = "128Mi"
DEFAULT_MAX_DURATION_S = 3600.0  # following without --duration: the hard stop
# Added to the run's length for activeDeadlineSeconds: scheduling, image pull
# and BPF load happen inside the deadline, and the summary must still flush.
DEFAULT_GRACE_S = 120.0
DEFAULT_TTL_S = 300  # minutes, not seconds: a failed Job stays for inspection (kubectl-trace #177)
TERMINATION_GRACE_S = 30  # SIGTERM -> detach, summary, end record: well under a second normally
SIDECAR_ANNOTATIONS = {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled"}

# The fix printed when PodSecurity refuses the tracer pod.
SETUP_HINT = "kubectl bpf setup --apply"


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """Everything one node's tracer Job depends on; ``build_job`` adds nothing
    but the clock (``created_at`` when empty)."""

    gadget: str
    run_id: str
    node: str
    run_spec: spec.RunSpec  # lease_file, lease_key, proc_root, max_duration_s are set by build_job
    image: str
    targets: tuple[str, ...] = ()  # "ns/pod" or "node/NAME": labels and the audit annotation
    user: str = ""
    host: str = ""
    command: str = ""  # the command line, for the audit annotation
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    job_namespace: str = DEFAULT_JOB_NAMESPACE
    privileged: bool = False
    duration_s: Optional[float] = None  # None: run_spec.duration_s; both None: max_duration_s
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    grace_s: float = DEFAULT_GRACE_S
    ttl_s: int = DEFAULT_TTL_S
    cpu: str = AGENT_CPU
    memory: str = AGENT_MEMORY
    created_at: str = ""  # ISO UTC; fixed in golden tests


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """The facts of a tracer Job that ``list`` and ``gc`` read."""

    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    created: Optional[datetime.datetime]
    active: int
    succeeded: int
    failed: int
    finished: Optional[str]  # "Complete" or "Failed" once a terminal condition is True
    deadline_s: Optional[int]  # activeDeadlineSeconds


@dataclasses.dataclass(frozen=True)
class Access:
    """One permission the session needs, as SelfSubjectAccessReview asks it."""

    verb: str
    resource: str
    namespace: str
    group: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        if self.subresource:
            resource += f"/{self.subresource}"
        where = f"in namespace \"{self.namespace}\"" if self.namespace else "in all namespaces"
        return f"{self.verb} {resource} {where}"


def run_limit_s(request: JobRequest) -> float:
    """How long the agent may run: the duration, else the hard maximum."""
    duration = request.duration_s if request.duration_s is not None else request.run_spec.duration_s
    return duration if duration is not None else request.max_duration_s


def agent_spec(request: JobRequest) -> spec.RunSpec:
    """The RunSpec as the agent in the pod sees it: host /proc, the lease
    file, and its own hard stop."""
    return dataclasses.replace(request.run_spec, lease_file=LEASE_FILE, lease_key=labels.LEASE_ANNOTATION,
                               proc_root=HOST_PROC, max_duration_s=run_limit_s(request))


def security_context(*, privileged: bool, gadget: str = "") -> dict[str, Any]:
    """``gadget`` is the agent gadget (RunSpec.gadget): some need more than the base set."""
    if privileged:
        # The API rejects privileged with allowPrivilegeEscalation false.
        return {"privileged": True, "allowPrivilegeEscalation": True, "runAsUser": 0,
                "readOnlyRootFilesystem": True}
    return {
        "runAsUser": 0,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": [*AGENT_CAPABILITIES, *GADGET_CAPABILITIES.get(gadget, ())]},
        "seccompProfile": dict(SECCOMP_PROFILE),
    }


def build_job(request: JobRequest) -> dict[str, Any]:
    """The Job for one node, as JSON-compatible data. Pure."""
    name = labels.job_name(request.gadget, request.run_id, request.node)
    created_at = request.created_at or labels.now_iso()
    object_labels = labels.job_labels(gadget=request.gadget, run_id=request.run_id, node=request.node,
                                      targets=request.targets, user=request.user, host=request.host)
    annotations = labels.job_annotations(targets=request.targets, user=request.user, host=request.host,
                                         command=request.command, created_at=created_at)
    resources = {"cpu": request.cpu, "memory": request.memory}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": request.image,
        "imagePullPolicy": request.image_pull_policy,
        # No shell: the spec is one argument, whatever the user typed.
        "command": ["python3", "-m", "kubectl_bpf.agent", "--spec", agent_spec(request).to_json()],
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],  # read-only root filesystem
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": security_context(privileged=request.privileged, gadget=request.run_spec.gadget),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "btf", "mountPath": BTF_DIR, "readOnly": True},
            {"name": "host-proc", "mountPath": HOST_PROC, "readOnly": True},
            {"name": "podinfo", "mountPath": PODINFO_DIR, "readOnly": True},
        ],
    }
    pod_spec: dict[str, Any] = {
        "nodeName": request.node,  # not affinity: the hostname label may differ from the node name
        "tolerations": [{"operator": "Exists"}],
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # the client resolved everything: no API access
        "enableServiceLinks": False,
        "hostPID": False,
        "hostNetwork": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "containers": [container],
        "volumes": [
            {"name": "btf", "hostPath": {"path": BTF_DIR, "type": "Directory"}},
            {"name": "host-proc", "hostPath": {"path": "/proc", "type": "Directory"}},
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}},
        ],
    }
    if request.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret} for secret in request.image_pull_secrets]
    pod_annotations = {**annotations, **SIDECAR_ANNOTATIONS, labels.LEASE_ANNOTATION: labels.LEASE_INITIAL}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": request.job_namespace, "labels": dict(object_labels),
                     "annotations": dict(annotations)},
        "spec": {
            "backoffLimit": 0,  # a failed tracer is reported, never silently retried
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": math.ceil(run_limit_s(request) + request.grace_s),
            "ttlSecondsAfterFinished": request.ttl_s,
            "template": {
                "metadata": {"labels": dict(object_labels), "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


def pod_from_job(job: dict[str, Any]) -> dict[str, Any]:
    """The pod the Job controller would create, for a server-side dry run.
    generateName avoids a name clash with anything real."""
    template = job["spec"]["template"]
    metadata = dict(template["metadata"])
    metadata["generateName"] = f"{job['metadata']['name']}-"
    metadata["namespace"] = job["metadata"]["namespace"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


# -- API calls ----------------------------------------------------------------------------------


def dry_run_pod(kube: client.Kube, job: dict[str, Any]) -> None:
    """Submit the exact tracer pod with dryRun=All: PodSecurity, webhooks,
    quotas and LimitRanges answer now, before anything exists, instead of as
    a FailedCreate event nobody sees (kubectl-trace #32, #194)."""
    namespace = job["metadata"]["namespace"]
    try:
        kube.core.create_namespaced_pod(namespace, pod_from_job(job), dry_run="All", **kube.call_options())
    except ApiException as exc:
        raise _creation_error(exc, namespace, "tracer pod (dry run)") from exc


def create_job(kube: client.Kube, job: dict[str, Any]) -> str:
    """Create the Job; returns its UID."""
    namespace = job["metadata"]["namespace"]
    try:
        created = kube.batch.create_namespaced_job(namespace, job, **kube.call_options())
    except ApiException as exc:
        raise _creation_error(exc, namespace, f"job \"{job['metadata']['name']}\"") from exc
    return str(created.metadata.uid or "")


def delete_job(kube: client.Kube, namespace: str, name: str, *,
               grace_period_s: Optional[int] = None) -> bool:
    """Delete a Job and, in the background, its pods; False if it was
    already gone. A Job has no graceful deletion of its own, so with
    ``grace_period_s`` (0: kill now) its pods are deleted directly with it;
    without, they get their terminationGracePeriodSeconds (SIGTERM first)."""
    body: dict[str, Any] = {"propagationPolicy": "Background"}
    try:
        kube.batch.delete_namespaced_job(name, namespace, body=body, **kube.call_options())
        deleted = True
    except ApiException as exc:
        if exc.status != 404:
            raise errors.from_api_exception(exc, f"deleting job \"{name}\" in namespace \"{namespace}\"") \
                from exc
        deleted = False
    if grace_period_s is not None:
        for pod in job_pods(kube, namespace, name):
            delete_pod(kube, namespace, pod.metadata.name, grace_period_s=grace_period_s)
    return deleted


def delete_pod(kube: client.Kube, namespace: str, name: str, *,
               grace_period_s: Optional[int] = None) -> bool:
    """Delete one pod; False if it was already gone."""
    body: dict[str, Any] = {} if grace_period_s is None else {"gracePeriodSeconds": grace_period_s}
    try:
        kube.core.delete_namespaced_pod(name, namespace, body=body, **kube.call_options())
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise errors.from_api_exception(exc, f"deleting pod \"{name}\" in namespace \"{namespace}\"") from exc
    return True


def deleted_part(kube: client.Kube, namespace: str, job_name: str, pod: Optional[str]) -> Optional[str]:
    """"job" when the Job is gone or being deleted, else "pod" when its pod
    is, else None: what someone else removed when an agent stopped on a
    signal this client did not send. None as well when the API cannot say."""
    options = kube.call_options()
    try:
        job = kube.batch.read_namespaced_job(job_name, namespace, **options)
        if job.metadata is not None and job.metadata.deletion_timestamp is not None:
            return "job"
    except ApiException as exc:
        if exc.status == 404:
            return "job"
        return None
    except (urllib3.exceptions.HTTPError, OSError):
        return None
    if pod is None:
        return None
    try:
        found = kube.core.read_namespaced_pod(pod, namespace, **options)
    except ApiException as exc:
        return "pod" if exc.status == 404 else None
    except (urllib3.exceptions.HTTPError, OSError):
        return None
    return "pod" if found.metadata is not None and found.metadata.deletion_timestamp is not None else None


def find_jobs(kube: client.Kube, namespace: str, selector: str) -> list[JobInfo]:
    """Jobs matching a label selector (labels.run_selector / managed_selector),
    oldest first. A missing namespace has no jobs."""
    try:
        result = kube.batch.list_namespaced_job(namespace, label_selector=selector, **kube.call_options())
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise errors.from_api_exception(exc, f"listing jobs in namespace \"{namespace}\"") from exc
    infos = [job_info(job) for job in result.items or ()]
    return sorted(infos, key=lambda info: (info.created or _EPOCH, info.name))


def job_pods(kube: client.Kube, namespace: str, job_name: str) -> list[Any]:
    """The Job's pods (V1Pod), newest first."""
    try:
        result = kube.core.list_namespaced_pod(
            namespace, label_selector=f"{labels.JOB_NAME_LABEL}={job_name}", **kube.call_options())
    except ApiException as exc:
        raise errors.from_api_exception(exc, f"listing pods of job \"{job_name}\"") from exc
    return sorted(result.items or (), key=lambda pod: pod.metadata.creation_timestamp or _EPOCH, reverse=True)


def job_pod(kube: client.Kube, namespace: str, job_name: str) -> Optional[Any]:
    """The Job's pod (V1Pod), None before the controller made it. With
    backoffLimit 0 there is one; if there are more, the newest."""
    pods = job_pods(kube, namespace, job_name)
    return pods[0] if pods else None


def required_access(job_namespace: str, target_namespaces: Sequence[str] = ()) -> list[Access]:
    """Every permission one session uses, in the order it uses them."""
    needed = [
        Access("create", "pods", job_namespace),  # the dry run
        Access("create", "jobs", job_namespace, group="batch"),
        Access("watch", "pods", job_namespace),
        Access("get", "pods", job_namespace, subresource="log"),
        Access("patch", "pods", job_namespace),  # the lease
        Access("delete", "jobs", job_namespace, group="batch"),
    ]
    needed += [Access("get", "pods", namespace) for namespace in dict.fromkeys(target_namespaces)]
    return needed


def check_access(kube: client.Kube, job_namespace: str, *, target_namespaces: Sequence[str] = ()) -> None:
    """Every permission a session needs (required_access), checked before
    anything is created."""
    check_permissions(kube, required_access(job_namespace, target_namespaces))


def check_permissions(kube: client.Kube, needed: Sequence[Access]) -> None:
    """Ask the API server (SelfSubjectAccessReview) for each permission at once;
    PermissionDeniedError names every missing one, so a user fixes them in one
    round. A review that itself fails proves nothing and is skipped."""
    if not needed:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(needed)) as pool:
        answers = list(pool.map(lambda access: _allowed(kube, access), needed))
    missing = [str(access) for access, allowed in zip(needed, answers) if allowed is False]
    if missing:
        several = len(missing) > 1
        raise errors.PermissionDeniedError(
            f"missing permission{'s' if several else ''}: {'; '.join(missing)} (the kubectl-bpf-user "
            f"roles grant {'them' if several else 'it'}: see `kubectl bpf setup --print`)")


def job_info(job: Any) -> JobInfo:
    """JobInfo from a V1Job."""
    metadata, status = job.metadata, job.status
    finished = None
    for condition in (status.conditions if status is not None else None) or ():
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            finished = condition.type
    return JobInfo(
        name=metadata.name, namespace=metadata.namespace or "", uid=metadata.uid or "",
        labels=dict(metadata.labels or {}), annotations=dict(metadata.annotations or {}),
        created=metadata.creation_timestamp,
        active=(status.active if status is not None else None) or 0,
        succeeded=(status.succeeded if status is not None else None) or 0,
        failed=(status.failed if status is not None else None) or 0,
        finished=finished,
        deadline_s=job.spec.active_deadline_seconds if job.spec is not None else None)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def setup_hint(namespace: str) -> str:
    """The setup command that creates and labels this job namespace."""
    if namespace == DEFAULT_JOB_NAMESPACE:
        return SETUP_HINT
    return f"{SETUP_HINT} --job-namespace {namespace}"


def _allowed(kube: client.Kube, access: Access) -> Optional[bool]:
    attributes = {"namespace": access.namespace, "verb": access.verb, "group": access.group,
                  "resource": access.resource}
    if access.subresource:
        attributes["subresource"] = access.subresource
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    try:
        review = kube.authz.create_self_subject_access_review(body, **kube.call_options())
    except ApiException as exc:
        if exc.status == 401:  # no review will pass: the credentials themselves are refused
            raise errors.from_api_exception(exc, "checking permissions") from exc
        return None
    return bool(review.status.allowed) if review.status is not None else None


def _creation_error(exc: ApiException, namespace: str, what: str) -> errors.KubeError:
    """Creating the tracer pod or Job failed: say which gate refused it and
    the exact fix."""
    message = errors.api_message(exc)
    setup = setup_hint(namespace)
    if exc.status == 404:
        return errors.NotFoundError(f"namespace \"{namespace}\" not found: create it with `{setup}`")
    if exc.status == 403 and "PodSecurity" in message:
        return errors.AdmissionError(
            f"PodSecurity in namespace \"{namespace}\" refuses the {what}: {message}. Fix: "
            f"`kubectl label ns {namespace} pod-security.kubernetes.io/enforce=privileged --overwrite` "
            f"or `{setup}`")
    if exc.status == 403 and "cannot create resource" in message:
        return errors.PermissionDeniedError(f"creating the {what}: {message}")
    if exc.status == 403 and "exceeded quota" in message:
        return errors.AdmissionError(
            f"a ResourceQuota in namespace \"{namespace}\" refuses the {what}: {message}")
    if exc.status == 403 or "admission webhook" in message:  # webhooks pick their own status code
        return errors.AdmissionError(f"admission refused the {what}: {message}")
    return errors.from_api_exception(exc, f"creating the {what} in namespace \"{namespace}\"")
