"""A fake cluster for the kube/ unit tests: no API server, no network.

Objects are written as the API returns them (camelCase JSON, as in
``kubectl get -o json``) and turned into the client library's own model
classes, so the code under test reads exactly what it reads in production.
The fake API classes implement only the calls kube/ makes, record them, and
raise ApiException like the server would (404, 403, 409).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any, Optional

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from kubectl_bpf.kube import client

CONTAINER_ID = "3f9a" * 16  # 64 hex digits, as containerd reports them


def model(type_name: str, data: dict[str, Any]) -> Any:
    """A client model from API JSON, whatever the client generation."""
    cls = getattr(k8s, type_name)
    if hasattr(cls, "from_dict"):  # pydantic-based clients
        return cls.from_dict(data)

    @dataclasses.dataclass
    class _Response:
        data: str

    return k8s.ApiClient().deserialize(_Response(json.dumps(data)), type_name)


def api_error(status: int, message: str = "", reason: str = "") -> ApiException:
    exc = ApiException(status=status, reason=reason or {403: "Forbidden", 404: "Not Found",
                                                         409: "Conflict"}.get(status, "Error"))
    exc.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return exc


def pod_json(name: str, *, namespace: str = "shop", node: Optional[str] = "n1", phase: str = "Running",
             ips: tuple[str, ...] = ("10.0.0.5",), labels: Optional[dict[str, str]] = None,
             containers: Optional[list[dict[str, Any]]] = None, host_network: bool = False,
             uid: Optional[str] = None, created: str = "2026-01-01T00:00:00Z",
             conditions: Optional[list[dict[str, Any]]] = None, os_name: Optional[str] = None,
             deleting: bool = False) -> dict[str, Any]:
    """A pod as the API returns it; by default Running on n1 with one
    running containerd container."""
    if containers is None:
        containers = [container_status("app", f"containerd://{CONTAINER_ID}")]
    spec: dict[str, Any] = {"containers": [{"name": c["name"], "image": "x"} for c in containers]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    if os_name:
        spec["os"] = {"name": os_name}
    status: dict[str, Any] = {"phase": phase, "containerStatuses": containers}
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    if conditions:
        status["conditions"] = conditions
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}",
                                "labels": labels or {}, "creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:10:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def container_status(name: str, container_id: Optional[str], *, state: str = "running",
                     reason: Optional[str] = None, message: Optional[str] = None) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if reason:
        detail["reason"] = reason
    if message:
        detail["message"] = message
    if state == "terminated":
        detail["exitCode"] = 0
    entry: dict[str, Any] = {"name": name, "image": "x", "imageID": "", "ready": state == "running",
                             "restartCount": 0, "state": {state: detail}}
    if container_id:
        entry["containerID"] = container_id
    return entry


def node_json(name: str, *, ready: bool = True, os_label: str = "linux") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/os": os_label}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def workload_json(kind: str, name: str, *, namespace: str = "shop",
                  match_labels: Optional[dict[str, str]] = None,
                  match_expressions: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if match_labels is not None:
        selector["matchLabels"] = match_labels
    if match_expressions is not None:
        selector["matchExpressions"] = match_expressions
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector,
                     "template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def job_json(name: str, *, namespace: str = "kubectl-bpf", labels: Optional[dict[str, str]] = None,
             annotations: Optional[dict[str, str]] = None, created: str = "2026-01-01T00:00:00Z",
             active: int = 0, succeeded: int = 0, failed: int = 0, finished: Optional[str] = None,
             deadline_s: Optional[int] = 600) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if active:
        status["active"] = active
    if succeeded:
        status["succeeded"] = succeeded
    if failed:
        status["failed"] = failed
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
    template = {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    spec: dict[str, Any] = {"template": template}
    if deadline_s is not None:
        spec["activeDeadlineSeconds"] = deadline_s
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {},
                         "annotations": annotations or {}, "creationTimestamp": created},
            "spec": spec, "status": status}


# -- label selectors, as the API server evaluates them --------------------------------------------

_REQUIREMENT = re.compile(r"^\s*(?:(?P<not>!)(?P<nkey>[^=!\s]+)|(?P<key>[^=!\s]+)\s*(?:(?P<op>==|=|!=)\s*"
                          r"(?P<value>\S*)|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$")


def selector_matches(selector: Optional[str], labels: dict[str, str]) -> bool:
    if not selector:
        return True
    matches = []
    for part in re.split(r",(?![^(]*\))", selector):
        match = _REQUIREMENT.match(part)
        if match is None:
            raise api_error(400, f"unable to parse requirement: {part!r}", reason="Bad Request")
        matches.append(match)
    for match in matches:
        if match["not"]:
            if match["nkey"] in labels:
                return False
            continue
        key = match["key"]
        if match["op"] in ("=", "=="):
            if labels.get(key) != match["value"]:
                return False
        elif match["op"] == "!=":
            if labels.get(key) == match["value"]:
                return False
        elif match["set"]:
            values = {v.strip() for v in match["values"].split(",")}
            if match["set"] == "in" and labels.get(key) not in values:
                return False
            if match["set"] == "notin" and key in labels and labels[key] in values:
                return False
        elif key not in labels:
            return False
    return True


# -- the fake API ---------------------------------------------------------------------------------


class FakeCluster:
    """State shared by the fake API groups, plus every call made."""

    def __init__(self) -> None:
        self.namespaces: set[str] = {"shop", "kubectl-bpf"}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.rbac: dict[tuple[str, Optional[str], str], dict[str, Any]] = {}
        self.denied_access: set[tuple[str, str, str]] = set()  # (verb, resource[/sub], namespace)
        self.calls: list[tuple[Any, ...]] = []
        # Name of a call -> exception to raise (checked before doing anything).
        self.failures: dict[str, ApiException] = {}

    def add_pod(self, data: dict[str, Any]) -> None:
        self.pods[(data["metadata"]["namespace"], data["metadata"]["name"])] = data

    def add_node(self, data: dict[str, Any]) -> None:
        self.nodes[data["metadata"]["name"]] = data

    def add_workload(self, data: dict[str, Any]) -> None:
        key = (data["kind"], data["metadata"]["namespace"], data["metadata"]["name"])
        self.workloads[key] = data

    def add_job(self, data: dict[str, Any]) -> None:
        self.jobs[(data["metadata"]["namespace"], data["metadata"]["name"])] = data

    def record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.failures:
            raise self.failures[name]

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]


class FakeCore:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def read_namespaced_pod(self, name: str, namespace: str, **_: Any) -> Any:
        self.c.record("read_namespaced_pod", namespace, name)
        if (namespace, name) not in self.c.pods:
            raise api_error(404, f'pods "{name}" not found')
        return model("V1Pod", self.c.pods[(namespace, name)])

    def list_namespaced_pod(self, namespace: str, label_selector: Optional[str] = None, **_: Any) -> Any:
        self.c.record("list_namespaced_pod", namespace, label_selector)
        selector_matches(label_selector, {})  # a malformed selector fails even with no pods
        items = [pod for (ns, _name), pod in sorted(self.c.pods.items())
                 if ns == namespace and selector_matches(label_selector, pod["metadata"].get("labels") or {})]
        return model("V1PodList", {"items": items, "metadata": {}})

    def list_pod_for_all_namespaces(self, limit: Optional[int] = None, _continue: Optional[str] = None,
                                    **_: Any) -> Any:
        self.c.record("list_pod_for_all_namespaces", limit, _continue)
        items = [pod for _key, pod in sorted(self.c.pods.items())]
        start = int(_continue or 0)
        page = items[start:start + (limit or len(items))]
        following = start + len(page)
        metadata = {"continue": str(following)} if following < len(items) else {}
        return model("V1PodList", {"items": page, "metadata": metadata})

    def read_namespace(self, name: str, **_: Any) -> Any:
        self.c.record("read_namespace", name)
        if name not in self.c.namespaces:
            raise api_error(404, f'namespaces "{name}" not found')
        return model("V1Namespace", {"metadata": {"name": name}})

    def read_node(self, name: str, **_: Any) -> Any:
        self.c.record("read_node", name)
        if name not in self.c.nodes:
            raise api_error(404, f'nodes "{name}" not found')
        return model("V1Node", self.c.nodes[name])

    def list_node(self, **_: Any) -> Any:
        self.c.record("list_node")
        return model("V1NodeList", {"items": [node for _name, node in sorted(self.c.nodes.items())],
                                    "metadata": {}})

    def create_namespaced_pod(self, namespace: str, body: dict[str, Any], dry_run: Optional[str] = None,
                              **_: Any) -> Any:
        self.c.record("create_namespaced_pod", namespace, body, dry_run)
        if namespace not in self.c.namespaces:
            raise api_error(404, f'namespaces "{namespace}" not found')
        return model("V1Pod", {**body, "metadata": {**body["metadata"], "name": "generated"}})

    def delete_namespaced_pod(self, name: str, namespace: str, body: Optional[dict[str, Any]] = None,
                              **_: Any) -> Any:
        self.c.record("delete_namespaced_pod", namespace, name, body)
        if self.c.pods.pop((namespace, name), None) is None:
            raise api_error(404, f'pods "{name}" not found')
        return None

    def create_namespace(self, body: dict[str, Any], **_: Any) -> Any:
        self.c.record("create_namespace", body["metadata"]["name"])
        if body["metadata"]["name"] in self.c.namespaces:
            raise api_error(409, "already exists")
        self.c.namespaces.add(body["metadata"]["name"])
        return None

    def patch_namespace(self, name: str, body: dict[str, Any], **_: Any) -> Any:
        self.c.record("patch_namespace", name, body)
        return None


class FakeApps:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def _read(self, kind: str, name: str, namespace: str) -> Any:
        self.c.record(f"read_{kind}", namespace, name)
        data = self.c.workloads.get((kind, namespace, name))
        if data is None:
            raise api_error(404, f"{kind.lower()}s \"{name}\" not found")
        return model(f"V1{kind}", data)

    def read_namespaced_deployment(self, name: str, namespace: str, **_: Any) -> Any:
        return self._read("Deployment", name, namespace)

    def read_namespaced_stateful_set(self, name: str, namespace: str, **_: Any) -> Any:
        return self._read("StatefulSet", name, namespace)

    def read_namespaced_daemon_set(self, name: str, namespace: str, **_: Any) -> Any:
        return self._read("DaemonSet", name, namespace)


class FakeBatch:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def create_namespaced_job(self, namespace: str, body: dict[str, Any], **_: Any) -> Any:
        self.c.record("create_namespaced_job", namespace, body)
        if namespace not in self.c.namespaces:
            raise api_error(404, f'namespaces "{namespace}" not found')
        created = copy.deepcopy(body)
        created["metadata"]["uid"] = "uid-created"
        self.c.add_job(created)
        return model("V1Job", created)

    def delete_namespaced_job(self, name: str, namespace: str, body: Optional[dict[str, Any]] = None,
                              **_: Any) -> Any:
        self.c.record("delete_namespaced_job", namespace, name, body)
        if self.c.jobs.pop((namespace, name), None) is None:
            raise api_error(404, f'jobs.batch "{name}" not found')
        return None

    def read_namespaced_job(self, name: str, namespace: str, **_: Any) -> Any:
        job = self.c.jobs.get((namespace, name))
        if job is None:
            raise api_error(404, f'jobs.batch "{name}" not found')
        return model("V1Job", job)

    def list_namespaced_job(self, namespace: str, label_selector: Optional[str] = None, **_: Any) -> Any:
        self.c.record("list_namespaced_job", namespace, label_selector)
        items = [job for (ns, _name), job in sorted(self.c.jobs.items())
                 if ns == namespace and selector_matches(label_selector, job["metadata"].get("labels") or {})]
        return model("V1JobList", {"items": items, "metadata": {}})


class FakeAuthz:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def create_self_subject_access_review(self, body: dict[str, Any], **_: Any) -> Any:
        self.c.record("create_self_subject_access_review", body)
        attributes = body["spec"]["resourceAttributes"]
        resource = attributes["resource"] + (f"/{attributes['subresource']}" if attributes.get("subresource")
                                             else "")
        allowed = (attributes["verb"], resource, attributes["namespace"]) not in self.c.denied_access
        return model("V1SelfSubjectAccessReview", {"spec": body["spec"], "status": {"allowed": allowed}})


class FakeRbac:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def _create(self, kind: str, namespace: Optional[str], body: dict[str, Any]) -> None:
        key = (kind, namespace, body["metadata"]["name"])
        self.c.record(f"create_{kind}", key)
        if key in self.c.rbac:
            raise api_error(409, "already exists")
        self.c.rbac[key] = body

    def _replace(self, kind: str, namespace: Optional[str], name: str, body: dict[str, Any]) -> None:
        self.c.record(f"replace_{kind}", (kind, namespace, name))
        self.c.rbac[(kind, namespace, name)] = body

    def create_cluster_role(self, body: dict[str, Any], **_: Any) -> None:
        self._create("ClusterRole", None, body)

    def replace_cluster_role(self, name: str, body: dict[str, Any], **_: Any) -> None:
        self._replace("ClusterRole", None, name, body)

    def create_cluster_role_binding(self, body: dict[str, Any], **_: Any) -> None:
        self._create("ClusterRoleBinding", None, body)

    def replace_cluster_role_binding(self, name: str, body: dict[str, Any], **_: Any) -> None:
        self._replace("ClusterRoleBinding", None, name, body)

    def create_namespaced_role(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self._create("Role", namespace, body)

    def replace_namespaced_role(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self._replace("Role", namespace, name, body)

    def create_namespaced_role_binding(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self._create("RoleBinding", namespace, body)

    def replace_namespaced_role_binding(self, name: str, namespace: str, body: dict[str, Any],
                                        **_: Any) -> None:
        self._replace("RoleBinding", namespace, name, body)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def kube(cluster: FakeCluster) -> client.Kube:
    return client.Kube(api=None, core=FakeCore(cluster), apps=FakeApps(cluster), batch=FakeBatch(cluster),
                       authz=FakeAuthz(cluster), context="test", user="alice", namespace="shop",
                       request_timeout_s=None)

