"""The NetworkPolicy v1 evaluator: is a pod-to-pod flow allowed, denied or undefined, and why.

Pure: takes an :class:`inventory.Inventory`, does no I/O and knows no CNI. Two entry
points share the semantics and the explanation builder:

- :func:`evaluate_pair` re-reads every selector for one flow. It is the reference
  (the tests hold the fast path to it) and serves one-off questions.
- :class:`PolicyIndex` + :func:`evaluate_matrix` precompute which policies select each
  pod and which pods each rule's peers match, so a matrix costs a few set look-ups
  per pair (1,000 x 1,000 pods with 200 policies in seconds, not minutes).

Semantics follow the API reference and the upstream e2e truth tables: a flow needs the
egress side of the source AND the ingress side of the destination; a side that no
policy isolates allows everything; an isolated side allows the union of its rules.
Choices the API leaves open: self traffic and hostNetwork pods are "undefined";
ipBlocks are matched against pod IPs (as the upstream conformance tests do), and an
allow that rests only on an ipBlock is flagged ``cni_dependent`` because some CNIs
(Cilium) never match pod IPs with ipBlocks. A flow is addressed to the destination's
primary IP (its first podIPs entry) from the source's IP of the same family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, NamedTuple

from kubectl_bpf.gadgets.policy_test import inventory, schema

Direction = Literal["ingress", "egress"]


@dataclasses.dataclass(frozen=True, slots=True)
class Traffic:
    """The destination port of a flow.

    ``port=None`` stands for any port that no policy names: only port entries without
    a number (or rules without ports) match it. Named ports are resolved by the caller
    to the number the destination declares.
    """

    port: int | None
    protocol: inventory.Protocol = "TCP"

    def __str__(self) -> str:
        return f"any other {self.protocol} port" if self.port is None else f"{self.port}/{self.protocol}"


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """``because`` names the deciding rules ("ns/policy ingress[0]") or the isolating
    side; ``cni_dependent`` marks an allow that rests only on an ipBlock."""

    expected: schema.Expected
    because: tuple[str, ...]
    cni_dependent: bool = False


# The NetworkPolicy docs: "a pod cannot block access to itself", whatever selects it.
ALLOW_SELF = Verdict("allow", (
    "a pod can always reach itself: NetworkPolicy cannot block a pod's traffic to itself",))
UNDEFINED_HOST_SOURCE = Verdict("undefined", (
    "the source uses the host network: NetworkPolicy does not define its traffic",))
UNDEFINED_HOST_DESTINATION = Verdict("undefined", (
    "the destination uses the host network: NetworkPolicy does not define its traffic",))


class _RuleRef(NamedTuple):
    label: str  # "ns/policy ingress[0]"
    via_ip_block: bool  # the peer matched only through an ipBlock


class _Side(NamedTuple):
    """One direction of a flow. No isolating policy means the side allows everything."""

    isolated_by: tuple[str, ...]
    allowed_by: tuple[_RuleRef, ...]

    @property
    def allows(self) -> bool:
        return not self.isolated_by or bool(self.allowed_by)


def _explain_sides(egress: _Side, ingress: _Side) -> Verdict:
    """The verdict of a flow from its two sides; both evaluation paths end here."""
    sides = (("egress", "source", "destination", egress), ("ingress", "destination", "source", ingress))
    if egress.allows and ingress.allows:
        because: list[str] = []
        for direction, role, _, side in sides:
            if not side.isolated_by:
                because.append(f"{direction}: no policy isolates the {role}")
            because.extend(f"{ref.label} via ipBlock" if ref.via_ip_block else ref.label
                           for ref in side.allowed_by)
        cni_dependent = any(side.isolated_by and all(ref.via_ip_block for ref in side.allowed_by)
                            for *_, side in sides)
        return Verdict("allow", tuple(because), cni_dependent)
    return Verdict("deny", tuple(
        f"{direction}: the {role} is isolated by {', '.join(side.isolated_by)}"
        f" and no {direction} rule allows this {peer} and port"
        for direction, role, peer, side in sides if not side.allows))


# --- The reference: one flow, every selector read again -------------------------------------


def evaluate_pair(inv: inventory.Inventory, *, source: inventory.Pod, destination: inventory.Pod,
                  traffic: Traffic) -> Verdict:
    """The verdict for one flow, computed straight from the definitions."""
    undefined = _undefined(source, destination)
    if undefined is not None:
        return undefined
    source_ip, destination_ip = _flow_ips(source, destination)
    egress = _evaluate_side(inv, direction="egress", pod=source, peer=destination,
                            peer_ip=destination_ip, destination=destination, traffic=traffic)
    ingress = _evaluate_side(inv, direction="ingress", pod=destination, peer=source,
                             peer_ip=source_ip, destination=destination, traffic=traffic)
    return _explain_sides(egress, ingress)


def _evaluate_side(inv: inventory.Inventory, *, direction: Direction, pod: inventory.Pod,
                   peer: inventory.Pod, peer_ip: inventory.IPAddress | None,
                   destination: inventory.Pod, traffic: Traffic) -> _Side:
    isolated_by: list[str] = []
    allowed_by: list[_RuleRef] = []
    for policy in inv.policies:
        isolates = policy.isolates_ingress if direction == "ingress" else policy.isolates_egress
        if policy.namespace != pod.namespace or not isolates or not policy.pod_selector.matches(pod.labels):
            continue
        isolated_by.append(policy.key)
        for index, rule in enumerate(policy.ingress if direction == "ingress" else policy.egress):
            if not ports_match(rule.ports, traffic, destination):
                continue
            via_ip_block = _match_peers(inv, rule.peers, policy.namespace, peer, peer_ip)
            if via_ip_block is not None:
                allowed_by.append(_RuleRef(f"{policy.key} {direction}[{index}]", via_ip_block))
    return _Side(tuple(isolated_by), tuple(allowed_by))


def _match_peers(inv: inventory.Inventory, peers: Sequence[inventory.Peer], policy_namespace: str,
                 pod: inventory.Pod, ip: inventory.IPAddress | None) -> bool | None:
    """None: no peer matches; False: a selector matches (or there are no peers);
    True: only an ipBlock matches."""
    if not peers:
        return False
    via_ip_block = None
    for peer in peers:
        if peer.ip_block is not None:
            if peer.ip_block.contains(ip):
                via_ip_block = True
            continue
        if peer.namespace_selector is None:
            namespace_ok = pod.namespace == policy_namespace
        else:
            namespace_ok = peer.namespace_selector.matches(inv.namespaces[pod.namespace].labels)
        if namespace_ok and (peer.pod_selector is None or peer.pod_selector.matches(pod.labels)):
            return False
    return via_ip_block


def ports_match(ports: Sequence[inventory.PolicyPort], traffic: Traffic,
                destination: inventory.Pod | None) -> bool:
    """Whether a rule's ports admit the traffic; named ports resolve on the destination
    pod by name AND protocol, so a pod lacking the name never matches, and neither
    does an address outside the cluster (``destination`` None: it declares no ports)."""
    if not ports:
        return True
    for entry in ports:
        if entry.protocol != traffic.protocol:
            continue
        if entry.port is None:
            return True
        if traffic.port is None:
            continue
        if isinstance(entry.port, int):
            if entry.port <= traffic.port <= (entry.end_port or entry.port):
                return True
            continue
        resolved = destination.find_port(entry.port, entry.protocol) if destination is not None else None
        if resolved is not None and resolved.port == traffic.port:
            return True
    return False


def _undefined(source: inventory.Pod, destination: inventory.Pod) -> Verdict | None:
    if source is destination:
        return ALLOW_SELF
    if source.host_network:
        return UNDEFINED_HOST_SOURCE
    if destination.host_network:
        return UNDEFINED_HOST_DESTINATION
    return None


def _flow_ips(source: inventory.Pod, destination: inventory.Pod
              ) -> tuple[inventory.IPAddress | None, inventory.IPAddress | None]:
    if not destination.ips:
        return None, None
    destination_ip = destination.ips[0]
    return source.ip_of_family(destination_ip.version), destination_ip


# --- The fast path: precomputed sets -------------------------------------------------------

# The ipBlock address a pod is matched by: its primary IP (egress: the destination is
# addressed there) or its IP of the destination's family (ingress: the source's address).
_PRIMARY = 0


@dataclasses.dataclass(slots=True, eq=False)
class _CompiledRule:
    ref: _RuleRef
    ip_ref: _RuleRef
    ports: tuple[inventory.PolicyPort, ...]
    selected: frozenset[int]  # pods matched by the rule's selector peers (all when it has no peers)
    ip_blocks: tuple[inventory.IPBlock, ...]
    ip_members: dict[int, frozenset[int]]  # address mode (_PRIMARY, 4, 6) -> pods an ipBlock matches


_Entry = tuple[_RuleRef, _RuleRef, frozenset[int], frozenset[int]]  # ref, ip_ref, members, ip-only
_Context = tuple[tuple[str, ...], tuple[_Entry, ...] | None]  # isolated_by, entries (None: not isolated)
_NOT_ISOLATED: _Context = ((), None)


class PolicyIndex:
    """What an inventory's flows have in common, whatever the port: computed once.

    Pods are numbered in inventory order and sets of pods are frozensets of those
    numbers. Selector results are cached by (selector, namespace), which pays off
    because real policies repeat a few selectors many times.
    """

    def __init__(self, inv: inventory.Inventory) -> None:
        self.inventory = inv
        self.pods = inv.pods
        self.position = {pod: index for index, pod in enumerate(inv.pods)}
        self.everyone = frozenset(range(len(inv.pods)))
        self._namespace_pods: dict[str, set[int]] = {name: set() for name in inv.namespaces}
        self._label_pods: dict[tuple[str, str], set[int]] = {}
        self._key_pods: dict[str, set[int]] = {}
        for index, pod in enumerate(inv.pods):
            self._namespace_pods[pod.namespace].add(index)
            for key, value in pod.labels.items():
                self._label_pods.setdefault((key, value), set()).add(index)
                self._key_pods.setdefault(key, set()).add(index)
        self._selector_cache: dict[tuple[inventory.Selector, str | None], frozenset[int]] = {}
        self._peer_cache: dict[tuple[inventory.Peer, str], frozenset[int]] = {}
        self._ip_cache: dict[tuple[inventory.IPBlock, int], frozenset[int]] = {}
        self._named_cache: dict[tuple[str, inventory.Protocol, int], frozenset[int]] = {}
        self.ingress_policies: list[tuple[int, ...]] = [() for _ in inv.pods]
        self.egress_policies: list[tuple[int, ...]] = [() for _ in inv.pods]
        self.rules: list[tuple[tuple[_CompiledRule, ...], tuple[_CompiledRule, ...]]] = []
        for number, policy in enumerate(inv.policies):
            for index in self._select(policy.pod_selector, policy.namespace):
                if policy.isolates_ingress:
                    self.ingress_policies[index] += (number,)
                if policy.isolates_egress:
                    self.egress_policies[index] += (number,)
            self.rules.append((self._compile(policy, "ingress"), self._compile(policy, "egress")))

    def _compile(self, policy: inventory.Policy, direction: Direction) -> tuple[_CompiledRule, ...]:
        compiled = []
        for index, rule in enumerate(policy.ingress if direction == "ingress" else policy.egress):
            label = f"{policy.key} {direction}[{index}]"
            selected: set[int] = set() if rule.peers else set(self.everyone)
            for peer in rule.peers:
                if peer.ip_block is None:
                    selected |= self._peer_pods(peer, policy.namespace)
            compiled.append(_CompiledRule(
                ref=_RuleRef(label, False), ip_ref=_RuleRef(label, True), ports=rule.ports,
                selected=frozenset(selected),
                ip_blocks=tuple(peer.ip_block for peer in rule.peers if peer.ip_block is not None),
                ip_members={}))
        return tuple(compiled)

    def _select(self, selector: inventory.Selector, namespace: str | None) -> frozenset[int]:
        """Pods matching a label selector, within one namespace or (None) everywhere."""
        key = (selector, namespace)
        cached = self._selector_cache.get(key)
        if cached is not None:
            return cached
        result = set(self.everyone) if namespace is None else set(self._namespace_pods.get(namespace, ()))
        for label in selector.match_labels:
            result &= self._label_pods.get(label, set())
        for requirement in selector.requirements:
            if requirement.operator in ("In", "NotIn"):
                having = set().union(*(self._label_pods.get((requirement.key, value), set())
                                       for value in requirement.values))
            else:
                having = self._key_pods.get(requirement.key, set())
            if requirement.operator in ("In", "Exists"):
                result &= having
            else:
                result -= having
        self._selector_cache[key] = frozen = frozenset(result)
        return frozen

    def _peer_pods(self, peer: inventory.Peer, policy_namespace: str) -> frozenset[int]:
        key = (peer, policy_namespace)
        cached = self._peer_cache.get(key)
        if cached is not None:
            return cached
        if peer.namespace_selector is None:
            namespaces = [policy_namespace]
        else:
            namespaces = [namespace.name for namespace in self.inventory.namespaces.values()
                          if peer.namespace_selector.matches(namespace.labels)]
        members: set[int] = set()
        for namespace in namespaces:
            if peer.pod_selector is None:
                members |= self._namespace_pods[namespace]
            else:
                members |= self._select(peer.pod_selector, namespace)
        self._peer_cache[key] = frozen = frozenset(members)
        return frozen

    def ip_members(self, rule: _CompiledRule, mode: int) -> frozenset[int]:
        """Pods a rule's ipBlocks match, by their primary IP or their IP of family ``mode``."""
        cached = rule.ip_members.get(mode)
        if cached is not None:
            return cached
        members: set[int] = set()
        for block in rule.ip_blocks:
            key = (block, mode)
            if key not in self._ip_cache:
                self._ip_cache[key] = frozenset(
                    index for index, pod in enumerate(self.pods)
                    if block.contains(_address(pod, mode)))
            members |= self._ip_cache[key]
        rule.ip_members[mode] = frozen = frozenset(members)
        return frozen

    def ports_toward(self, destination: inventory.Pod) -> frozenset[Traffic]:
        """The numeric policy ports that can govern traffic to this pod: those of the
        ingress rules of policies selecting it and of the egress rules whose peers can
        match it. A port range contributes its first port; named ports are left out
        (they are the destination's own container ports)."""
        column = self.position[destination]
        ports: set[Traffic] = set()
        for number, (ingress, egress) in enumerate(self.rules):
            for rule in egress:
                if column in rule.selected or column in self.ip_members(rule, _PRIMARY):
                    ports.update(_numeric_ports(rule))
            if number in self.ingress_policies[column]:
                for rule in ingress:
                    ports.update(_numeric_ports(rule))
        return frozenset(ports)

    def named_port_pods(self, name: str, protocol: inventory.Protocol, port: int) -> frozenset[int]:
        """Pods on which the named port resolves to this number."""
        key = (name, protocol, port)
        cached = self._named_cache.get(key)
        if cached is None:
            cached = self._named_cache[key] = frozenset(
                index for index, pod in enumerate(self.pods)
                if (resolved := pod.find_port(name, protocol)) is not None and resolved.port == port)
        return cached


def _numeric_ports(rule: _CompiledRule) -> Iterator[Traffic]:
    for entry in rule.ports:
        if isinstance(entry.port, int):
            yield Traffic(entry.port, entry.protocol)


def _address(pod: inventory.Pod, mode: int) -> inventory.IPAddress | None:
    if mode == _PRIMARY:
        return pod.ips[0] if pod.ips else None
    return pod.ip_of_family(mode)


def evaluate_matrix(index: PolicyIndex, *, sources: Iterable[inventory.Pod],
                    destinations: Sequence[inventory.Pod], traffic: Traffic
                    ) -> Iterator[tuple[inventory.Pod, inventory.Pod, Verdict]]:
    """Every (source, destination) verdict for one port, sources outer, in the given order.

    Same results as :func:`evaluate_pair` on every pair. Per pair it does one set
    look-up per rule of the two sides and one dict look-up for the explanation,
    which is built once per distinct (rules, rules) outcome.
    """
    position = index.position
    ingress_contexts: dict[tuple[object, ...], _Context] = {}
    columns = [(destination, position[destination],
                _ingress_context(index, destination, traffic, ingress_contexts))
               for destination in destinations]
    egress_contexts: dict[tuple[int, ...], _Context] = {}
    explained: dict[tuple[object, ...], Verdict] = {}
    for source in sources:
        row = position[source]
        if source.host_network:
            for destination, _, _ in columns:
                yield source, destination, ALLOW_SELF if destination is source else UNDEFINED_HOST_SOURCE
            continue
        policies = index.egress_policies[row]
        egress = egress_contexts.get(policies)
        if egress is None:
            egress = egress_contexts[policies] = _egress_context(index, policies, traffic)
        egress_isolated_by, egress_entries = egress
        for destination, column, (ingress_isolated_by, ingress_entries) in columns:
            if column == row:
                yield source, destination, ALLOW_SELF
                continue
            if destination.host_network:
                yield source, destination, UNDEFINED_HOST_DESTINATION
                continue
            egress_allowed = () if egress_entries is None else tuple(
                ip_ref if column in ip_only else ref
                for ref, ip_ref, members, ip_only in egress_entries if column in members)
            ingress_allowed = () if ingress_entries is None else tuple(
                ip_ref if row in ip_only else ref
                for ref, ip_ref, members, ip_only in ingress_entries if row in members)
            key = (egress_isolated_by, egress_allowed, ingress_isolated_by, ingress_allowed)
            verdict = explained.get(key)
            if verdict is None:
                verdict = explained[key] = _explain_sides(_Side(egress_isolated_by, egress_allowed),
                                                         _Side(ingress_isolated_by, ingress_allowed))
            yield source, destination, verdict


def _egress_context(index: PolicyIndex, policies: tuple[int, ...], traffic: Traffic) -> _Context:
    """The source side for a set of egress policies: each rule's members are the
    destinations its peers match AND its ports admit (named ports resolve per destination)."""
    if not policies:
        return _NOT_ISOLATED
    entries: list[_Entry] = []
    for number in policies:
        for rule in index.rules[number][1]:
            admitted = _admitted_destinations(index, rule.ports, traffic)
            if not admitted:
                continue
            by_ip = index.ip_members(rule, _PRIMARY)
            members = (rule.selected | by_ip) & admitted
            if members:
                entries.append((rule.ref, rule.ip_ref, members, (by_ip - rule.selected) & admitted))
    return tuple(index.inventory.policies[number].key for number in policies), tuple(entries)


def _admitted_destinations(index: PolicyIndex, ports: Sequence[inventory.PolicyPort],
                           traffic: Traffic) -> frozenset[int]:
    """Destinations on which some of the port entries admit the traffic."""
    if not ports:
        return index.everyone
    admitted: set[int] = set()
    for entry in ports:
        if entry.protocol != traffic.protocol or (entry.port is not None and traffic.port is None):
            continue
        if entry.port is None or (isinstance(entry.port, int) and traffic.port is not None
                                  and entry.port <= traffic.port <= (entry.end_port or entry.port)):
            return index.everyone
        if isinstance(entry.port, str) and traffic.port is not None:
            admitted |= index.named_port_pods(entry.port, entry.protocol, traffic.port)
    return frozenset(admitted)


def _ingress_context(index: PolicyIndex, destination: inventory.Pod, traffic: Traffic,
                     cache: dict[tuple[object, ...], _Context]) -> _Context:
    """The destination side: its rules whose ports admit the traffic, with the sources
    their peers match (ipBlocks by the source's IP of the destination's family).
    Destinations with the same policies, admitting rules and IP family share one."""
    policies = index.ingress_policies[index.position[destination]]
    if not policies:
        return _NOT_ISOLATED
    mode = destination.ips[0].version if destination.ips else None
    admitting = tuple(rule for number in policies for rule in index.rules[number][0]
                      if ports_match(rule.ports, traffic, destination))
    key = (policies, mode, *admitting)
    context = cache.get(key)
    if context is None:
        entries: list[_Entry] = []
        for rule in admitting:
            by_ip = frozenset[int]() if mode is None else index.ip_members(rule, mode)
            entries.append((rule.ref, rule.ip_ref, rule.selected | by_ip, by_ip - rule.selected))
        isolated_by = tuple(index.inventory.policies[number].key for number in policies)
        context = cache[key] = (isolated_by, tuple(entries))
    return context
