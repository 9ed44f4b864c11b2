"""From what the user typed (``web``, ``deploy/web``, ``node/n1``, ``-l app=web``)
to the host facts the agent needs: node, container IDs, pod IPs.

The agent gets no API access, so everything Kubernetes-shaped is resolved
here, on the client, and grouped by node (one tracer Job per node). Errors
are one line naming what is missing or why it cannot be traced; warnings are
returned as text for the CLI to print, never printed here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Optional

import urllib3
from kubernetes.client.rest import ApiException

from kubectl_bpf.kube import client, errors, transport
from kubectl_bpf.protocol import exitcodes, spec

# "containerd://", "cri-o://", "docker://": any runtime scheme (field notes §1.7).
RUNTIME_PREFIX = re.compile(r"^[A-Za-z0-9.+-]+://")
HOST_NETWORK_WARNING = "netns is the node's: drops of every host-network process are shown"
WINDOWS = "windows"
OS_LABEL = "kubernetes.io/os"
PEER_PAGE_SIZE = 500  # pods per list call: bounded memory and response size on big clusters

POD = "pod"
DEPLOYMENT = "deployment"
STATEFULSET = "statefulset"
DAEMONSET = "daemonset"
NODE = "node"
SELECTOR = "selector"  # -l: not typed as a reference, but resolved like one

# Every spelling kubectl accepts for the kinds we trace.
KINDS = {
    "pod": POD, "pods": POD, "po": POD,
    "deployment": DEPLOYMENT, "deployments": DEPLOYMENT, "deploy": DEPLOYMENT,
    "deployment.apps": DEPLOYMENT,
    "statefulset": STATEFULSET, "statefulsets": STATEFULSET, "sts": STATEFULSET,
    "statefulset.apps": STATEFULSET,
    "daemonset": DAEMONSET, "daemonsets": DAEMONSET, "ds": DAEMONSET, "daemonset.apps": DAEMONSET,
    "node": NODE, "nodes": NODE, "no": NODE,
}
WORKLOADS = (DEPLOYMENT, STATEFULSET, DAEMONSET)
# kubectl kinds we cannot trace: "svc/web" must be refused as a kind, not read
# as pod "web" in a namespace "svc" (NS/POD is accepted, see parse_target).
OTHER_KINDS = frozenset({
    "svc", "service", "services", "job", "jobs", "job.batch", "cronjob", "cronjobs", "cj", "rs",
    "replicaset", "replicasets", "rc", "replicationcontroller", "ns", "namespace", "namespaces",
    "cm", "configmap", "configmaps", "secret", "secrets", "ing", "ingress", "ingresses", "ep",
    "endpoints", "sa", "serviceaccount", "pvc", "pv", "netpol", "networkpolicy"})
# DNS-1123 subdomain: what pod, workload and node names may be.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1123 label


class TargetSyntaxError(errors.KubeError):
    """A target reference that cannot mean anything (usage error)."""

    exit_code = exitcodes.USAGE


@dataclasses.dataclass(frozen=True)
class TargetRef:
    """One reference as typed: ``kind`` is one of POD, DEPLOYMENT,
    STATEFULSET, DAEMONSET, NODE or SELECTOR (then ``name`` is the selector)."""

    kind: str
    name: str
    namespace: Optional[str] = None  # NS/POD: the pod's own namespace instead of -n's

    def __str__(self) -> str:
        if self.namespace is not None:
            return f"{self.namespace}/{self.name}"
        return f"-l {self.name}" if self.kind == SELECTOR else f"{self.kind}/{self.name}"


@dataclasses.dataclass(frozen=True)
class PodTarget:
    namespace: str
    name: str
    uid: str
    node: str
    ips: tuple[str, ...]  # status.podIPs: one per family
    container_ids: tuple[str, ...]  # running containers only, runtime prefix stripped
    host_network: bool
    phase: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class NodeGroup:
    """What one tracer Job traces: some pods of a node, or the whole node."""

    node: str
    pods: tuple[PodTarget, ...]
    whole_node: bool = False


@dataclasses.dataclass(frozen=True)
class Resolution:
    groups: tuple[NodeGroup, ...]
    warnings: tuple[str, ...]

    @property
    def pods(self) -> tuple[PodTarget, ...]:
        return tuple(pod for group in self.groups for pod in group.pods)


def parse_target(text: str) -> TargetRef:
    """``NAME`` (a pod), ``KIND/NAME`` with kubectl's kind spellings, or
    ``NS/POD`` as policy-test takes it. A kind spelling wins over a namespace
    of the same name (``node/x`` is a node), as in kubectl."""
    kind_text, slash, name = text.strip().partition("/")
    if not slash:
        kind_text, name = POD, kind_text
    kind = KINDS.get(kind_text.lower())
    if kind is None and kind_text not in OTHER_KINDS and _NAMESPACE.match(kind_text) and _NAME.match(name):
        return TargetRef(POD, name, namespace=kind_text)
    if kind is None:
        raise TargetSyntaxError(
            f"unsupported target kind {kind_text!r} in {text!r}: use NAME, pod/NAME, deploy/NAME, "
            "sts/NAME, ds/NAME or node/NAME")
    if not _NAME.match(name) or len(name) > 253:
        raise TargetSyntaxError(f"invalid {kind} name {name!r} in target {text!r}")
    return TargetRef(kind, name)


def strip_runtime_prefix(container_id: str) -> str:
    """``containerd://abc`` -> ``abc`` for any runtime (cri-o://, docker://)."""
    return RUNTIME_PREFIX.sub("", container_id.strip())


def selector_string(selector: Any) -> str:
    """A V1LabelSelector (matchLabels + matchExpressions) as the string
    ``label_selector=`` takes. Empty selector: "" (matches everything)."""
    if selector is None:
        return ""
    parts = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for requirement in selector.match_expressions or ():
        operator, key = requirement.operator, requirement.key
        values = ",".join(sorted(requirement.values or ()))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise errors.KubeError(f"unknown label selector operator {operator!r} for key {key!r}")
    return ",".join(parts)


def target_spec(group: NodeGroup) -> spec.TargetSpec:
    """The agent's view of a group: container IDs and IPs, or nothing at all
    (the whole host) for a node target."""
    if group.whole_node:
        return spec.TargetSpec()
    return spec.TargetSpec(container_ids=_unique(c for pod in group.pods for c in pod.container_ids),
                           ips=_unique(ip for pod in group.pods for ip in pod.ips))


def describe(group: NodeGroup) -> tuple[str, ...]:
    """``ns/pod`` per pod, or ``node/NAME``: the Job's targets annotation."""
    names = tuple(pod.ref for pod in group.pods)
    return (f"node/{group.node}", *names) if group.whole_node else names


# -- resolution (API calls) ---------------------------------------------------------------------


def resolve(kube: client.Kube, references: Sequence[str], *, namespace: Optional[str] = None,
            selector: Optional[str] = None) -> Resolution:
    """Resolve every reference (plus ``-l selector``) in ``namespace`` (default:
    the connection's, i.e. -n or the context's) to node groups. A pod named
    explicitly must be traceable; pods reached through a workload or selector
    that are not are skipped with a warning, and only when none is left is it
    an error."""
    refs = [parse_target(text) for text in references]
    if selector:
        refs.append(TargetRef(SELECTOR, selector))
    if not refs:
        raise TargetSyntaxError("no target: give a pod, KIND/NAME, node/NAME or -l SELECTOR")
    resolver = _Resolver(kube, namespace or kube.namespace)
    for ref in refs:
        resolver.add(ref)
    return resolver.result()


def peer_names(kube: client.Kube) -> dict[str, str]:
    """Pod IP -> ``ns/pod`` over all namespaces, for naming the other side
    of a drop. {} when the user may not list pods cluster-wide: names are a
    nicety. Host-network and finished pods are left out: their IPs are the
    node's or may already belong to someone else."""
    names: dict[str, str] = {}
    token: Optional[str] = None
    while True:
        try:
            page = kube.core.list_pod_for_all_namespaces(limit=PEER_PAGE_SIZE, _continue=token,
                                                         **kube.call_options())
        except ApiException as exc:
            if exc.status == 403:
                return {}
            raise errors.from_api_exception(exc, "listing pods in all namespaces") from exc
        for pod in page.items or ():
            if pod.spec is not None and pod.spec.host_network:
                continue
            if pod.status is None or pod.status.phase in ("Succeeded", "Failed"):
                continue
            for ip in _pod_ips(pod):
                names[ip] = f"{pod.metadata.namespace}/{pod.metadata.name}"
        token = page.metadata._continue if page.metadata is not None else None
        if not token:
            return names


NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def node_names(kube: client.Kube) -> dict[str, str]:
    """Node address -> ``node/NAME``, for naming a peer that is a node (kubelet
    probes, host-network pods, NodePort traffic): its InternalIP/ExternalIP,
    and the first address of each of its pod CIDRs, which the bridge CNI gives
    the node's own end of the pod network (cni0, the pods' gateway). Pods
    are named before nodes (address_names), so a CNI that hands that address
    to a pod keeps the pod's name. {} when the user may not list nodes."""
    try:
        listed = kube.core.list_node(**kube.call_options())
    except ApiException as exc:
        if exc.status == 403:
            return {}
        raise errors.from_api_exception(exc, "listing nodes") from exc
    names: dict[str, str] = {}
    for node in listed.items or ():
        if node.metadata is None or not node.metadata.name:
            continue
        name = f"node/{node.metadata.name}"
        cidrs = [*((node.spec.pod_cidrs or ()) if node.spec is not None else ()),
                 *([node.spec.pod_cidr] if node.spec is not None and node.spec.pod_cidr else [])]
        for cidr in cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            if network.num_addresses > 2:
                names.setdefault(str(network.network_address + 1), name)
        for address in (node.status.addresses if node.status is not None else None) or ():
            if address.type in NODE_ADDRESS_TYPES and address.address:
                names[address.address] = name  # a node's own address beats another's gateway guess
    return names


def address_names(kube: client.Kube) -> dict[str, str]:
    """Every address the client can name: nodes, then pods over them."""
    return {**node_names(kube), **peer_names(kube)}


class _Resolver:
    """Accumulates pods and whole nodes across references; caches node reads."""

    def __init__(self, kube: client.Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace
        self._pods: dict[str, PodTarget] = {}  # by UID: a pod named twice is traced once
        self._whole_nodes: list[str] = []
        self._warnings: list[str] = []
        self._nodes: dict[str, Optional[Any]] = {}  # None: unknown (forbidden or gone)

    def add(self, ref: TargetRef) -> None:
        if ref.kind == NODE:
            self._add_node(ref.name)
        elif ref.kind == POD:
            pod = self._read_pod(ref.name, ref.namespace or self._namespace)
            problem = self._untraceable(pod)
            if problem is not None:
                raise errors.TargetStateError(f"{_describe_pod(pod)} {problem}")
            self._keep(pod)
        else:
            label_selector, what = self._selector_of(ref)
            pods = self._list_pods(label_selector)
            if not pods:
                if ref.kind == SELECTOR:
                    self._check_namespace()
                    raise errors.NotFoundError(
                        f"no pods match selector \"{ref.name}\" in namespace \"{self._namespace}\"")
                raise errors.NotFoundError(
                    f"{ref.kind} \"{ref.name}\" in namespace \"{self._namespace}\" has no pods "
                    f"(selector \"{label_selector}\")")
            problems = [(pod, self._untraceable(pod)) for pod in pods]
            traceable = [pod for pod, problem in problems if problem is None]
            if not traceable:
                pod, problem = problems[0]
                raise errors.TargetStateError(
                    f"no pod of {what} can be traced: {_describe_pod(pod)} {problem}"
                    + (f" (and {len(pods) - 1} more)" if len(pods) > 1 else ""))
            for pod, problem in problems:
                if problem is not None:
                    self._warnings.append(f"skipping {_describe_pod(pod)}: it {problem}")
            for pod in traceable:
                self._keep(pod)

    def result(self) -> Resolution:
        by_node: dict[str, list[PodTarget]] = {}
        for pod in self._pods.values():
            by_node.setdefault(pod.node, []).append(pod)
        nodes = sorted(set(by_node) | set(self._whole_nodes))
        groups = tuple(NodeGroup(node=node, pods=tuple(sorted(by_node.get(node, ()), key=lambda p: p.ref)),
                                 whole_node=node in self._whole_nodes) for node in nodes)
        return Resolution(groups=groups, warnings=tuple(dict.fromkeys(self._warnings)))

    # -- pods --

    def _keep(self, pod: Any) -> None:
        target = _pod_target(pod)
        if target.host_network:
            self._warnings.append(f"{_describe_pod(pod)} uses hostNetwork: {HOST_NETWORK_WARNING}")
        if not target.container_ids:
            self._warnings.append(
                f"{_describe_pod(pod)} has no running container: matching its IPs only "
                "(drops inside its netns are missed until a container runs)")
        self._pods.setdefault(target.uid, target)

    def _untraceable(self, pod: Any) -> Optional[str]:
        """Why this pod cannot be traced, as the end of a sentence; None if it can."""
        status = pod.status
        phase = (status.phase if status is not None else None) or "Unknown"
        if phase != "Running":
            return f"is {phase}{_pending_detail(pod)}" if phase in ("Pending", "Unknown") else \
                f"has finished ({phase})"
        node = pod.spec.node_name if pod.spec is not None else None
        if not node:
            return "is not scheduled on a node"
        if not _pod_ips(pod):
            return "has no IP address yet"
        os_name = getattr(getattr(pod.spec, "os", None), "name", None)
        if os_name == WINDOWS or self._node_os(node) == WINDOWS:
            return f"runs on Windows node \"{node}\": eBPF tracing needs a Linux node"
        return None

    def _read_pod(self, name: str, namespace: str) -> Any:
        try:
            return self._kube.core.read_namespaced_pod(name, namespace, **self._kube.call_options())
        except ApiException as exc:
            if exc.status == 404:
                self._check_namespace(namespace)
            raise errors.from_api_exception(
                exc, f"reading pod \"{name}\" in namespace \"{namespace}\"",
                not_found=f"pod \"{name}\" not found in namespace \"{namespace}\"") from exc

    def _list_pods(self, label_selector: str) -> list[Any]:
        try:
            result = self._kube.core.list_namespaced_pod(self._namespace, label_selector=label_selector,
                                                         **self._kube.call_options())
        except ApiException as exc:
            if exc.status == 400:
                raise TargetSyntaxError(f"invalid label selector {label_selector!r}: "
                                        f"{errors.api_message(exc)}") from exc
            raise errors.from_api_exception(
                exc, f"listing pods in namespace \"{self._namespace}\"") from exc
        return sorted(result.items or (), key=lambda pod: pod.metadata.name)

    def _selector_of(self, ref: TargetRef) -> tuple[str, str]:
        """The pod selector of a workload (or -l), and how to name it in messages."""
        if ref.kind == SELECTOR:
            return ref.name, f"selector \"{ref.name}\""
        readers: dict[str, Callable[..., Any]] = {
            DEPLOYMENT: self._kube.apps.read_namespaced_deployment,
            STATEFULSET: self._kube.apps.read_namespaced_stateful_set,
            DAEMONSET: self._kube.apps.read_namespaced_daemon_set,
        }
        try:
            workload = readers[ref.kind](ref.name, self._namespace, **self._kube.call_options())
        except ApiException as exc:
            if exc.status == 404:
                self._check_namespace()
            raise errors.from_api_exception(
                exc, f"reading {ref.kind} \"{ref.name}\" in namespace \"{self._namespace}\"",
                not_found=f"{ref.kind} \"{ref.name}\" not found in namespace \"{self._namespace}\"",
            ) from exc
        selector = selector_string(workload.spec.selector if workload.spec is not None else None)
        if not selector:
            # apps/v1 forbids this; refuse rather than trace every pod of the namespace.
            raise errors.TargetStateError(f"{ref.kind} \"{ref.name}\" has an empty pod selector")
        return selector, f"{ref.kind} \"{ref.name}\" (selector \"{selector}\")"

    def _check_namespace(self, namespace: Optional[str] = None) -> None:
        """Raise NotFoundError if the namespace (default: -n's) itself is
        missing: "pod not found" would send the user looking for the wrong
        thing. A forbidden read proves nothing and is ignored."""
        namespace = namespace or self._namespace
        try:
            self._kube.core.read_namespace(namespace, **self._kube.call_options())
        except ApiException as exc:
            if exc.status == 404:
                raise errors.NotFoundError(f"namespace \"{namespace}\" not found") from exc

    # -- nodes --

    def _add_node(self, name: str) -> None:
        try:
            node = self._kube.core.read_node(name, **self._kube.call_options())
        except ApiException as exc:
            raise errors.from_api_exception(exc, f"reading node \"{name}\"",
                                            not_found=f"node \"{name}\" not found") from exc
        self._nodes[name] = node
        labels = (node.metadata.labels if node.metadata is not None else None) or {}
        if labels.get(OS_LABEL) == WINDOWS:
            raise errors.TargetStateError(f"node \"{name}\" runs Windows: eBPF tracing needs a Linux node")
        if not _node_ready(node):
            self._warnings.append(f"node \"{name}\" is not Ready: the tracer pod may not start")
        if name not in self._whole_nodes:
            self._whole_nodes.append(name)

    def _node_os(self, name: str) -> Optional[str]:
        """The node's OS label; None when unknown. Reading nodes needs a
        cluster-scoped permission many users lack: then the check is skipped."""
        if name not in self._nodes:
            try:
                self._nodes[name] = self._kube.core.read_node(name, **self._kube.call_options())
            except ApiException as exc:
                if exc.status not in (403, 404):
                    raise errors.from_api_exception(exc, f"reading node \"{name}\"") from exc
                self._nodes[name] = None
        node = self._nodes[name]
        if node is None or node.metadata is None:
            return None
        return (node.metadata.labels or {}).get(OS_LABEL)


def _pod_target(pod: Any) -> PodTarget:
    statuses = [*(pod.status.init_container_statuses or ()), *(pod.status.container_statuses or ())]
    # Running ones only: the agent refuses an ID with no process, and a
    # restarted container has a new ID anyway. Native sidecars (init
    # containers still running) share the netns and count too.
    container_ids = _unique(strip_runtime_prefix(status.container_id).lower() for status in statuses
                            if status.container_id and status.state is not None and status.state.running)
    return PodTarget(namespace=pod.metadata.namespace, name=pod.metadata.name, uid=pod.metadata.uid or "",
                     node=pod.spec.node_name or "", ips=_pod_ips(pod), container_ids=container_ids,
                     host_network=bool(pod.spec.host_network), phase=pod.status.phase or "Unknown")


def pod_target_from_json(pod: Mapping[str, Any]) -> PodTarget:
    """_pod_target for a pod as raw API JSON (``kubectl get -o json``), by the
    same rules: running containers only, init ones included, IDs bare."""
    metadata, pod_spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
    running = [entry for entry in statuses if (entry.get("state") or {}).get("running") is not None]
    container_ids = _unique(strip_runtime_prefix(entry["containerID"]).lower() for entry in running
                            if entry.get("containerID"))
    ips = _unique([*(entry["ip"] for entry in status.get("podIPs") or () if entry.get("ip")),
                   *([status["podIP"]] if status.get("podIP") else [])])
    return PodTarget(namespace=str(metadata.get("namespace")), name=str(metadata["name"]),
                     uid=str(metadata.get("uid") or ""), node=str(pod_spec.get("nodeName") or ""), ips=ips,
                     container_ids=container_ids, host_network=bool(pod_spec.get("hostNetwork")),
                     phase=str(status.get("phase") or "Unknown"))


def _pod_ips(pod: Any) -> tuple[str, ...]:
    status = pod.status
    if status is None:
        return ()
    # pod_ips in recent clients, pod_i_ps in older generated ones.
    listed = getattr(status, "pod_ips", None) or getattr(status, "pod_i_ps", None) or ()
    return _unique([*(entry.ip for entry in listed if entry.ip), *([status.pod_ip] if status.pod_ip else [])])


def _pending_detail(pod: Any) -> str:
    """The most specific reason a pod is not running: a container's waiting
    reason (ImagePullBackOff), else an unmet condition (Unschedulable), else
    the pod's own reason."""
    status = pod.status
    if status is None:
        return ""
    for container in [*(status.init_container_statuses or ()), *(status.container_statuses or ())]:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None and waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
            return f" ({waiting.reason}: {waiting.message})" if waiting.message else f" ({waiting.reason})"
    for condition in status.conditions or ():
        # Ready/ContainersReady are False for every pending pod: only
        # scheduling says something the waiting reasons above did not.
        if condition.type == "PodScheduled" and condition.status != "True" and condition.reason:
            message = f": {condition.message}" if condition.message else ""
            return f" ({condition.reason}{message})"
    if status.reason:
        return f" ({status.reason}: {status.message})" if status.message else f" ({status.reason})"
    return ""


def _describe_pod(pod: Any) -> str:
    return f"pod \"{pod.metadata.name}\" in namespace \"{pod.metadata.namespace}\""


def _node_ready(node: Any) -> bool:
    conditions = (node.status.conditions if node.status is not None else None) or ()
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


COMPLETION_TIMEOUT_S = 2.0  # a TAB press must not hang on a slow or absent cluster


def complete_reference(kube: client.Kube, incomplete: str) -> list[str]:
    """Target references that start with ``incomplete``: pod names, or
    ``kind/name`` once a kind is typed. Best effort: an API refusal offers
    nothing rather than an error in the middle of a shell line; only a
    cluster that cannot be reached or trusted raises (UnreachableError)."""
    kind_text, slash, prefix = incomplete.partition("/")
    options: dict[str, Any] = {"_request_timeout": COMPLETION_TIMEOUT_S}
    listers = {
        POD: lambda: kube.core.list_namespaced_pod(kube.namespace, **options),
        DEPLOYMENT: lambda: kube.apps.list_namespaced_deployment(kube.namespace, **options),
        STATEFULSET: lambda: kube.apps.list_namespaced_stateful_set(kube.namespace, **options),
        DAEMONSET: lambda: kube.apps.list_namespaced_daemon_set(kube.namespace, **options),
        NODE: lambda: kube.core.list_node(**options),
    }
    kind = KINDS.get(kind_text) if slash else POD
    if kind is None or kind not in listers:
        return []
    try:
        names = [item.metadata.name for item in listers[kind]().items]
    except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        unreachable = transport.unreachable(exc)
        if unreachable is not None:
            raise unreachable from exc
        return []
    if slash:
        return [f"{kind_text}/{name}" for name in names if name.startswith(prefix)]
    return [name for name in names if name.startswith(incomplete)]
