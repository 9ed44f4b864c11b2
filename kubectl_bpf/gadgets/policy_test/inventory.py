"""Typed namespaces, pods and NetworkPolicies read from exported Kubernetes YAML.

The input is what ``kubectl get ns,pods,networkpolicies -A -o yaml`` prints: a
``kind: List`` (or ``PodList``...), a multi-document stream, or a mix. This module
validates what the evaluator relies on and applies the API server's defaults, so a
hand-written file means what the cluster would make of it: protocol TCP, the
implicit Egress policy type, the ``kubernetes.io/metadata.name`` namespace label.
Objects the API server would reject raise :class:`InventoryError` with one line
naming the object and the field. It parses text and does no file I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Literal, TypedDict, TypeVar, cast

import yaml

Protocol = Literal["TCP", "UDP", "SCTP"]
PROTOCOLS: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The API server sets this label on every namespace since 1.21; exports of older
# clusters and hand-written files may lack it, and policies select on it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# A port name is an IANA_SVC_NAME: at most 15 lowercase alphanumerics or '-', with
# at least one letter (so "80" as a string is an error, not a name).
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
# Only these NetworkPolicies are evaluated: Calico's and Cilium's CRDs share the
# kind but not the semantics.
POLICY_API_VERSION = "networking.k8s.io/v1"
# Pods in these phases have no network any more; they stay in the inventory and
# the caller decides whether to probe them.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

_T = TypeVar("_T")


class InventoryError(ValueError):
    """The input is not YAML, or holds an object the API server would reject."""


# --- The fields read from the input, as the API spells them ---------------------------


class RawMeta(TypedDict, total=False):
    name: str
    namespace: str
    labels: dict[str, str]


class RawObject(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: RawMeta
    items: list[object]  # kind: List and the typed lists (PodList...)


class RawContainerPort(TypedDict, total=False):
    name: str
    containerPort: int
    protocol: str


class RawContainer(TypedDict, total=False):
    name: str
    ports: list[RawContainerPort]


class RawPodSpec(TypedDict, total=False):
    hostNetwork: bool
    nodeName: str
    containers: list[RawContainer]


class RawPodIP(TypedDict, total=False):
    ip: str


class RawPodStatus(TypedDict, total=False):
    phase: str
    podIP: str
    podIPs: list[RawPodIP]


class RawPod(RawObject, total=False):
    spec: RawPodSpec
    status: RawPodStatus


class RawRequirement(TypedDict, total=False):
    key: str
    operator: str
    values: list[str]


class RawSelector(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[RawRequirement]


# "except" is a Python keyword, hence the functional form.
RawIPBlock = TypedDict("RawIPBlock", {"cidr": str, "except": list[str]}, total=False)


class RawPeer(TypedDict, total=False):
    podSelector: RawSelector
    namespaceSelector: RawSelector
    ipBlock: RawIPBlock


class RawPolicyPort(TypedDict, total=False):
    protocol: str
    port: int | str
    endPort: int


RawIngressRule = TypedDict(
    "RawIngressRule", {"from": list[RawPeer], "ports": list[RawPolicyPort]}, total=False)


class RawEgressRule(TypedDict, total=False):
    to: list[RawPeer]
    ports: list[RawPolicyPort]


class RawPolicySpec(TypedDict, total=False):
    podSelector: RawSelector
    policyTypes: list[str]
    ingress: list[RawIngressRule]
    egress: list[RawEgressRule]


class RawPolicy(RawObject, total=False):
    spec: RawPolicySpec


# --- The typed model ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One matchExpressions entry; NotIn and DoesNotExist match objects lacking the key."""

    key: str
    operator: Operator
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    """A label selector; the empty one matches everything. Hashable, so results can be cached."""

    match_labels: tuple[tuple[str, str], ...] = ()
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (all(labels.get(key) == value for key, value in self.match_labels)
                and all(requirement.matches(labels) for requirement in self.requirements))


@dataclasses.dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...]

    def contains(self, ip: IPAddress | None) -> bool:
        """False for a missing address or one of the other IP family."""
        if ip is None or ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in excluded for excluded in self.excepts)

    def __str__(self) -> str:
        excepts = f" except {', '.join(str(net) for net in self.excepts)}" if self.excepts else ""
        return f"{self.cidr}{excepts}"


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """One from/to entry: either ipBlock alone, or selectors that are ANDed.

    A missing namespaceSelector means the policy's own namespace; a missing
    podSelector means every pod of the selected namespaces.
    """

    pod_selector: Selector | None = None
    namespace_selector: Selector | None = None
    ip_block: IPBlock | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyPort:
    """``port`` None means every port of the protocol; a str is a named port."""

    protocol: Protocol = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """An ingress or egress rule. Empty ``peers`` (from/to absent or []) means every
    peer; empty ``ports`` means every port of every protocol."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A NetworkPolicy with its effective policyTypes resolved into two flags.

    A direction a policy does not isolate has no rules here, whatever the input
    said: the API server ignores them too.
    """

    namespace: str
    name: str
    pod_selector: Selector
    isolates_ingress: bool
    isolates_egress: bool
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerPort:
    port: int
    protocol: Protocol
    name: str | None


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Pod:
    """A pod as the evaluator sees it. Compared by identity: two pods are never equal."""

    namespace: str
    name: str
    labels: dict[str, str]
    ips: tuple[IPAddress, ...]
    host_network: bool
    ports: tuple[ContainerPort, ...]
    phase: str
    node_name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def ip_of_family(self, version: int) -> IPAddress | None:
        return next((ip for ip in self.ips if ip.version == version), None)

    def find_port(self, name: str, protocol: Protocol | None) -> ContainerPort | None:
        """The container port with this name (and protocol, if given), or None."""
        return next((port for port in self.ports
                     if port.name == name and (protocol is None or port.protocol == protocol)), None)


@dataclasses.dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Inventory:
    """Pods and policies sorted by namespace/name; every pod's namespace is present.

    ``warnings`` says what was assumed or skipped (other kinds, other policy APIs,
    namespaces known only from their pods), for the caller to show.
    """

    namespaces: dict[str, Namespace]
    pods: tuple[Pod, ...]
    policies: tuple[Policy, ...]
    warnings: tuple[str, ...] = ()


# --- Parsing -------------------------------------------------------------------------------


def load_inventory(text: str) -> Inventory:
    """Parse a YAML document stream; see :func:`parse_objects`."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present
    try:
        documents = list(yaml.load_all(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InventoryError(f"not valid YAML: {exc.problem or exc.context}{where}") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"not valid YAML: {' '.join(str(exc).split())}") from exc
    return parse_objects(documents)


def parse_objects(documents: Iterable[object]) -> Inventory:
    """Build an inventory from parsed YAML documents (objects or lists of objects).

    Empty documents are skipped. Kinds other than Namespace, Pod and NetworkPolicy
    are skipped with a warning, so the output of ``kubectl get all`` works too.
    """
    namespaces: dict[str, Namespace] = {}
    pods: dict[str, Pod] = {}
    policies: dict[str, Policy] = {}
    skipped: dict[str, int] = {}
    warnings: list[str] = []
    for where, raw in _flatten(documents):
        kind = raw.get("kind")
        if kind == "Namespace":
            namespace = _parse_namespace(raw, where)
            _add_unique(namespaces, namespace.name, namespace, f"Namespace {namespace.name}")
        elif kind == "Pod":
            pod = _parse_pod(cast(RawPod, raw), where)
            _add_unique(pods, pod.key, pod, f"Pod {pod.key}")
        elif kind == "NetworkPolicy" and raw.get("apiVersion", POLICY_API_VERSION) == POLICY_API_VERSION:
            policy = _parse_policy(cast(RawPolicy, raw), where)
            _add_unique(policies, policy.key, policy, f"NetworkPolicy {policy.key}")
        else:
            label = f"{raw.get('apiVersion')} {kind}" if kind == "NetworkPolicy" else str(kind)
            skipped[label] = skipped.get(label, 0) + 1
    for label, count in sorted(skipped.items()):
        warnings.append(f"skipped {count} object(s) of kind {label}: not evaluated")
    for name in sorted({pod.namespace for pod in pods.values()} - namespaces.keys()):
        # Known only from its pods: the one label it is sure to carry is its name.
        namespaces[name] = Namespace(name, {NAMESPACE_NAME_LABEL: name})
        warnings.append(
            f"no Namespace object for {name}: assuming it has no labels but {NAMESPACE_NAME_LABEL}")
    return Inventory(
        namespaces=dict(sorted(namespaces.items())),
        pods=tuple(pod for _, pod in sorted(pods.items(), key=lambda item: _sort_key(item[1].key))),
        policies=tuple(policy for _, policy in sorted(policies.items(),
                                                      key=lambda item: _sort_key(item[1].key))),
        warnings=tuple(warnings),
    )


def _sort_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def _add_unique(objects: dict[str, _T], key: str, value: _T, label: str) -> None:
    if key in objects:
        raise InventoryError(f"{label} appears twice")
    objects[key] = value


def _flatten(documents: Iterable[object]) -> Iterable[tuple[str, RawObject]]:
    """Yield (position, object) for each object, unpacking lists at any depth.

    A typed list (PodList) from the API omits its items' kind; it is derived from
    the list's kind.
    """
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        yield from _unpack(document, f"document {number}", None)


def _unpack(value: object, where: str, item_kind: str | None) -> Iterable[tuple[str, RawObject]]:
    raw = cast(RawObject, _mapping(value, where))
    kind = raw.get("kind", item_kind)
    if kind is None:
        raise InventoryError(f"{where}: has no kind")
    if not isinstance(kind, str):
        raise InventoryError(f"{where}: kind must be a string, got {_describe(kind)}")
    if kind.endswith("List") and "items" in raw:
        inner_kind = kind[:-len("List")] or None
        for index, item in enumerate(_list(raw.get("items"), f"{where}.items")):
            yield from _unpack(item, f"{where}.items[{index}]", inner_kind)
        return
    if "kind" not in raw:
        raw = cast(RawObject, {**raw, "kind": kind})
    yield where, raw


def _parse_namespace(raw: RawObject, where: str) -> Namespace:
    name, _ = _metadata(raw, f"{where}: Namespace", namespaced=False)
    labels = _labels(_mapping(raw.get("metadata"), where).get("labels"), f"Namespace {name}")
    labels[NAMESPACE_NAME_LABEL] = name  # the API server overwrites a written value, so do we
    return Namespace(name, labels)


def _parse_pod(raw: RawPod, where: str) -> Pod:
    name, namespace = _metadata(raw, f"{where}: Pod", namespaced=True)
    label = f"Pod {namespace}/{name}"
    labels = _labels(_mapping(raw.get("metadata"), label).get("labels"), label)
    spec = cast(RawPodSpec, _mapping(raw.get("spec", {}), f"{label}: spec"))
    status = cast(RawPodStatus, _mapping(raw.get("status", {}), f"{label}: status"))
    ports: list[ContainerPort] = []
    for c_index, container in enumerate(_list(spec.get("containers"), f"{label}: spec.containers")):
        c_where = f"{label}: spec.containers[{c_index}]"
        raw_container = cast(RawContainer, _mapping(container, c_where))
        for p_index, port in enumerate(_list(raw_container.get("ports"), f"{c_where}.ports")):
            p_where = f"{c_where}.ports[{p_index}]"
            raw_port = cast(RawContainerPort, _mapping(port, p_where))
            port_name = raw_port.get("name")
            if port_name is not None and not (isinstance(port_name, str) and PORT_NAME.match(port_name)):
                raise InventoryError(f"{p_where}.name: {port_name!r} is not a valid port name")
            ports.append(ContainerPort(
                port=_port_number(raw_port.get("containerPort"), f"{p_where}.containerPort"),
                protocol=_protocol(raw_port.get("protocol"), f"{p_where}.protocol"),
                name=port_name))
    return Pod(
        namespace=namespace, name=name, labels=labels, ips=_pod_ips(status, label),
        host_network=_bool(spec.get("hostNetwork"), f"{label}: spec.hostNetwork"),
        ports=tuple(ports),
        phase=_string(status.get("phase", ""), f"{label}: status.phase"),
        node_name=_string(spec.get("nodeName", ""), f"{label}: spec.nodeName"))


def _pod_ips(status: RawPodStatus, label: str) -> tuple[IPAddress, ...]:
    """status.podIPs in order (the first is the primary), else status.podIP."""
    texts: list[object] = []
    for index, entry in enumerate(_list(status.get("podIPs"), f"{label}: status.podIPs")):
        texts.append(cast(RawPodIP, _mapping(entry, f"{label}: status.podIPs[{index}]")).get("ip"))
    if not texts and status.get("podIP") is not None:
        texts.append(status.get("podIP"))
    ips: list[IPAddress] = []
    for text in texts:
        try:
            ips.append(ipaddress.ip_address(_string(text, f"{label}: status.podIPs")))
        except ValueError as exc:
            raise InventoryError(f"{label}: status.podIPs: {text!r} is not an IP address") from exc
    return tuple(ips)


def _parse_policy(raw: RawPolicy, where: str) -> Policy:
    name, namespace = _metadata(raw, f"{where}: NetworkPolicy", namespaced=True)
    label = f"NetworkPolicy {namespace}/{name}"
    spec = cast(RawPolicySpec, _mapping(raw.get("spec"), f"{label}: spec"))
    ingress_raw = _list(spec.get("ingress"), f"{label}: spec.ingress")
    egress_raw = _list(spec.get("egress"), f"{label}: spec.egress")
    types = _list(spec.get("policyTypes"), f"{label}: spec.policyTypes")
    if not types:
        # The API server's defaulting: Ingress always, Egress only when the egress
        # list is non-empty (so `egress: []` alone does not isolate egress).
        types = ["Ingress", "Egress"] if egress_raw else ["Ingress"]
    for policy_type in types:
        if policy_type not in ("Ingress", "Egress"):
            raise InventoryError(f"{label}: spec.policyTypes: {policy_type!r} is not Ingress or Egress")
    selector_raw = spec.get("podSelector", {})  # required by the API; absent reads as {}
    return Policy(
        namespace=namespace, name=name,
        pod_selector=_selector(selector_raw, f"{label}: spec.podSelector"),
        isolates_ingress="Ingress" in types, isolates_egress="Egress" in types,
        ingress=tuple(_rule(rule, "from", f"{label}: spec.ingress[{index}]")
                      for index, rule in enumerate(ingress_raw)) if "Ingress" in types else (),
        egress=tuple(_rule(rule, "to", f"{label}: spec.egress[{index}]")
                     for index, rule in enumerate(egress_raw)) if "Egress" in types else ())


def _rule(value: object, peers_field: Literal["from", "to"], where: str) -> Rule:
    raw = _mapping(value, where)
    peers = tuple(_peer(peer, f"{where}.{peers_field}[{index}]")
                  for index, peer in enumerate(_list(raw.get(peers_field), f"{where}.{peers_field}")))
    ports = tuple(_policy_port(port, f"{where}.ports[{index}]")
                  for index, port in enumerate(_list(raw.get("ports"), f"{where}.ports")))
    return Rule(peers=peers, ports=ports)


def _peer(value: object, where: str) -> Peer:
    raw = cast(RawPeer, _mapping(value, where))
    pod_selector = raw.get("podSelector")
    namespace_selector = raw.get("namespaceSelector")
    ip_block = raw.get("ipBlock")
    if ip_block is not None:
        if pod_selector is not None or namespace_selector is not None:
            raise InventoryError(f"{where}: ipBlock cannot be combined with a selector in one peer")
        return Peer(ip_block=_ip_block(ip_block, f"{where}.ipBlock"))
    if pod_selector is None and namespace_selector is None:
        raise InventoryError(f"{where}: a peer needs podSelector, namespaceSelector or ipBlock")
    return Peer(
        pod_selector=None if pod_selector is None else _selector(pod_selector, f"{where}.podSelector"),
        namespace_selector=(None if namespace_selector is None
                            else _selector(namespace_selector, f"{where}.namespaceSelector")))


def _ip_block(value: object, where: str) -> IPBlock:
    raw = cast(RawIPBlock, _mapping(value, where))
    cidr = _network(raw.get("cidr"), f"{where}.cidr")
    excepts: list[IPNetwork] = []
    for index, text in enumerate(_list(raw.get("except"), f"{where}.except")):
        excluded = _network(text, f"{where}.except[{index}]")
        # The API server wants a strict subset: an except equal to the cidr is refused too.
        if excluded.version != cidr.version or not excluded.subnet_of(cidr) or excluded == cidr:  # type: ignore[arg-type]
            raise InventoryError(f"{where}.except[{index}]: {excluded} is not strictly inside {cidr} "
                                 "(the API server rejects this policy)")
        excepts.append(excluded)
    return IPBlock(cidr=cidr, excepts=tuple(excepts))


def _network(value: object, where: str) -> IPNetwork:
    text = _string(value, where)
    try:
        # strict=False: the API accepts host bits set ("10.0.0.1/24") and masks them.
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InventoryError(f"{where}: {text!r} is not a CIDR") from exc


def _policy_port(value: object, where: str) -> PolicyPort:
    raw = cast(RawPolicyPort, _mapping(value, where))
    protocol = _protocol(raw.get("protocol"), f"{where}.protocol")
    port_raw = raw.get("port")
    end_raw = raw.get("endPort")
    port: int | str | None
    if port_raw is None:
        port = None
    elif isinstance(port_raw, str) and not port_raw.isdigit():
        if not PORT_NAME.match(port_raw):
            raise InventoryError(f"{where}.port: {port_raw!r} is not a valid port name")
        port = port_raw
    else:
        port = _port_number(port_raw, f"{where}.port")
    end_port: int | None = None
    if end_raw is not None:
        end_port = _port_number(end_raw, f"{where}.endPort")
        if not isinstance(port, int):
            raise InventoryError(f"{where}.endPort: needs a numeric port")
        if end_port < port:
            raise InventoryError(f"{where}.endPort: {end_port} is below port {port}")
    return PolicyPort(protocol=protocol, port=port, end_port=end_port)


def _selector(value: object, where: str) -> Selector:
    raw = cast(RawSelector, _mapping(value, where))
    match_labels = _labels(raw.get("matchLabels"), where)
    requirements: list[Requirement] = []
    for index, entry in enumerate(_list(raw.get("matchExpressions"), f"{where}.matchExpressions")):
        e_where = f"{where}.matchExpressions[{index}]"
        raw_requirement = cast(RawRequirement, _mapping(entry, e_where))
        operator = raw_requirement.get("operator")
        if operator not in OPERATORS:
            raise InventoryError(f"{e_where}.operator: {operator!r} is not one of {', '.join(OPERATORS)}")
        values = frozenset(_string(item, f"{e_where}.values")
                           for item in _list(raw_requirement.get("values"), f"{e_where}.values"))
        if operator in ("In", "NotIn") and not values:
            raise InventoryError(f"{e_where}.values: {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise InventoryError(f"{e_where}.values: {operator} takes no values")
        requirements.append(Requirement(
            key=_string(raw_requirement.get("key"), f"{e_where}.key"),
            operator=operator, values=values))
    return Selector(match_labels=tuple(sorted(match_labels.items())), requirements=tuple(requirements))


def _metadata(raw: RawObject, kind: str, *, namespaced: bool) -> tuple[str, str]:
    """(name, namespace); a namespaced object without a namespace is in "default", as with kubectl apply."""
    metadata = cast(RawMeta, _mapping(raw.get("metadata"), f"{kind}: metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InventoryError(f"{kind}: metadata.name must be a non-empty string, got {name!r}")
    namespace = metadata.get("namespace", "default") if namespaced else ""
    if not isinstance(namespace, str) or (namespaced and not namespace):
        raise InventoryError(f"{kind} {name}: metadata.namespace must be a non-empty string")
    return name, namespace


def _labels(value: object, where: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, item in _mapping(value if value is not None else {}, where).items():
        if not isinstance(item, str):
            # A YAML 1 or true would silently never match the string "1": refuse it.
            raise InventoryError(f"{where}: label {key}={item!r} must be a string (quote it)")
        labels[key] = item
    return labels


def _protocol(value: object, where: str) -> Protocol:
    if value is None:
        return "TCP"
    if value not in PROTOCOLS:
        raise InventoryError(f"{where}: {value!r} is not one of {', '.join(PROTOCOLS)}")
    return value


def _port_number(value: object, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        raise InventoryError(f"{where}: {value!r} is a string; write the number without quotes")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise InventoryError(f"{where}: must be a port number 1-65535, got {value!r}")
    return value


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where}: expected a mapping, got {_describe(value)}")
    return cast(Mapping[str, object], value)


def _list(value: object, where: str) -> list[object]:
    """A list; a missing (null) field reads as empty, as the API treats it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(f"{where}: expected a list, got {_describe(value)}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InventoryError(f"{where}: expected a string, got {_describe(value)}")
    return value


def _bool(value: object, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InventoryError(f"{where}: expected true or false, got {_describe(value)}")
    return value


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
