"""Which (source, destination, port) cells a policy-test run evaluates, and their records.

Between the command and the evaluator: parses ``--port`` values, resolves named
ports on each destination, picks the default ports, and groups cells by port so
they render as one truth table per port. Pure: no I/O, no click.

Choices (documented in the command's help too):

- A run covers every ordered pair of the selected pods, the pod to itself included
  (always "allow": NetworkPolicy cannot block a pod's traffic to itself). ``-n NS``
  selects the pods of NS as sources AND destinations; policies and namespaces elsewhere
  still count. Succeeded/Failed pods are left out.
- Without ``--port``, each destination is tested on its declared container ports plus
  the numeric ports of the policy rules that can govern traffic to it (range starts).
  A destination with none of either gets one cell per source for "any other TCP
  port", which is exact there: no rule can tell two such ports apart.
- A named ``--port http`` resolves on each destination (by name, and protocol if
  given); where it does not exist the cell is undefined. A name that no destination
  declares is refused (check_named_ports): that is a typo, not a result.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator, Sequence

from kubectl_bpf.gadgets.policy_test import evaluate, inventory, schema

PORT_SPEC = re.compile(r"^(?P<port>[0-9]+|[a-z0-9-]+)(?:/(?P<protocol>[A-Za-z]+))?$")


class PortSpecError(ValueError):
    """A ``--port`` value that is not PORT[/PROTOCOL]."""


class NamespaceNotFoundError(LookupError):
    """``-n`` names a namespace the input knows nothing of."""


@dataclasses.dataclass(frozen=True, slots=True)
class PortSpec:
    """A requested port: a number (protocol defaults to TCP) or a name (protocol None:
    whatever the destination declares under that name)."""

    port: int | str
    protocol: inventory.Protocol | None

    def __str__(self) -> str:
        return str(self.port) if self.protocol is None else f"{self.port}/{self.protocol}"


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    """``traffic`` is None when a requested named port does not exist on the destination."""

    source: inventory.Pod
    destination: inventory.Pod
    traffic: evaluate.Traffic | None
    named_port: str | None
    verdict: evaluate.Verdict


@dataclasses.dataclass(slots=True)
class PortGroup:
    """One truth table: ``cells`` yields sources x ``destinations`` in order, once."""

    title: str
    destinations: tuple[inventory.Pod, ...]
    cells: Iterator[Cell]


def parse_port_spec(text: str) -> PortSpec:
    """``80``, ``80/TCP``, ``53/udp``, ``http``, ``http/TCP``; the protocol is case-insensitive."""
    match = PORT_SPEC.match(text.strip())
    if match is None:
        raise PortSpecError(f"bad port {text!r}: expected PORT[/PROTOCOL], e.g. 80, 53/UDP or http")
    protocol = (match["protocol"] or "").upper() or None
    if protocol is not None and protocol not in inventory.PROTOCOLS:
        raise PortSpecError(f"bad port {text!r}: protocol must be one of {', '.join(inventory.PROTOCOLS)}")
    port_text = match["port"]
    if port_text.isdigit():
        number = int(port_text)
        if not 1 <= number <= 65535:
            raise PortSpecError(f"bad port {text!r}: the number must be 1-65535")
        return PortSpec(number, protocol or "TCP")
    if not inventory.PORT_NAME.match(port_text):
        raise PortSpecError(f"bad port {text!r}: not a port name (at most 15 of a-z, 0-9 and '-')")
    return PortSpec(port_text, protocol)


def check_named_ports(specs: Sequence[PortSpec], destinations: Sequence[inventory.Pod] | None) -> None:
    """Refuse a named ``--port`` that no destination declares (a typo would
    otherwise come back as a table of "undefined"), or any named port toward
    an address (``destinations`` None): a name only means something on a pod."""
    for spec in specs:
        if isinstance(spec.port, int):
            continue
        if destinations is None:
            raise PortSpecError(f"bad port {spec.port!r}: a named port needs a pod destination, "
                                "not an address; give the number")
        if not any(pod.find_port(spec.port, spec.protocol) for pod in destinations):
            names = sorted({f"{port.name}/{port.protocol}" for pod in destinations for port in pod.ports
                            if port.name})
            declared = f"declared: {', '.join(names)}" if names else "none declares a named port"
            raise PortSpecError(f"bad port {str(spec)!r}: no destination declares a container port of that "
                                f"name ({declared})")


def select_pods(inv: inventory.Inventory, namespace: str | None) -> tuple[inventory.Pod, ...]:
    """The pods a run covers: all (or one namespace's) pods that have not finished."""
    if namespace is not None and namespace not in inv.namespaces:
        raise NamespaceNotFoundError(f"namespace {namespace} is not in the input")
    return tuple(pod for pod in inv.pods
                 if (namespace is None or pod.namespace == namespace)
                 and pod.phase not in inventory.FINISHED_PHASES)


def evaluate_groups(index: evaluate.PolicyIndex, *, pods: Sequence[inventory.Pod],
                    specs: Sequence[PortSpec]) -> Iterator[PortGroup]:
    """One group per requested port, or per default port (see the module docstring)."""
    if specs:
        for spec in specs:
            yield _requested_group(index, pods, spec)
        return
    by_traffic: dict[evaluate.Traffic, list[inventory.Pod]] = {}
    for destination in pods:
        ports = {evaluate.Traffic(port.port, port.protocol) for port in destination.ports}
        ports |= index.ports_toward(destination)
        for traffic in ports or {evaluate.Traffic(None, "TCP")}:
            by_traffic.setdefault(traffic, []).append(destination)
    for traffic in sorted(by_traffic, key=lambda item: (item.port is None, item.port or 0, item.protocol)):
        destinations = tuple(by_traffic[traffic])
        yield PortGroup(str(traffic), destinations, _merge_cells(index, pods, [(traffic, destinations)]))


def _requested_group(index: evaluate.PolicyIndex, pods: Sequence[inventory.Pod], spec: PortSpec) -> PortGroup:
    if isinstance(spec.port, int):
        traffic = evaluate.Traffic(spec.port, spec.protocol or "TCP")
        return PortGroup(str(spec), tuple(pods), _merge_cells(index, pods, [(traffic, tuple(pods))]))
    # A named port may resolve to a different number on each destination, or to none.
    missing = evaluate.Verdict("undefined", (
        f"the destination declares no {'' if spec.protocol is None else spec.protocol + ' '}"
        f"container port named {spec.port}",))
    resolved: dict[evaluate.Traffic | evaluate.Verdict, list[inventory.Pod]] = {}
    for destination in pods:
        port = destination.find_port(spec.port, spec.protocol)
        resolved.setdefault(missing if port is None else evaluate.Traffic(port.port, port.protocol),
                            []).append(destination)
    partitions = [(traffic, tuple(destinations)) for traffic, destinations in resolved.items()]
    return PortGroup(str(spec), tuple(pods), _merge_cells(index, pods, partitions))


_Partition = tuple[evaluate.Traffic | evaluate.Verdict, tuple[inventory.Pod, ...]]


def _merge_cells(index: evaluate.PolicyIndex, sources: Sequence[inventory.Pod],
                 partitions: Sequence[_Partition]) -> Iterator[Cell]:
    """Cells in (source, destination) order from one matrix per partition of destinations.

    The partitions advance in lockstep, one source row at a time, so nothing is held
    beyond one row.
    """
    partition_rows = [_partition_rows(index, sources, target, destinations)
                      for target, destinations in partitions]
    position = index.position
    for _ in sources:
        row = [cell for rows in partition_rows for cell in next(rows)]
        if len(partition_rows) > 1:
            row.sort(key=lambda cell: position[cell.destination])
        yield from row


def _partition_rows(index: evaluate.PolicyIndex, sources: Sequence[inventory.Pod],
                    target: evaluate.Traffic | evaluate.Verdict, destinations: tuple[inventory.Pod, ...]
                    ) -> Iterator[list[Cell]]:
    """One list of cells per source. A Verdict instead of traffic (a named port these
    destinations lack) fills every cell but the self ones."""
    if isinstance(target, evaluate.Verdict):
        for source in sources:
            yield [Cell(source, destination, None, None,
                        evaluate.ALLOW_SELF if destination is source else target)
                   for destination in destinations]
        return
    names = [_port_name(destination, target) for destination in destinations]
    stream = evaluate.evaluate_matrix(index, sources=sources, destinations=destinations, traffic=target)
    for _ in sources:
        yield [Cell(source, destination, target, name, verdict)
               for (source, destination, verdict), name
               in zip(itertools.islice(stream, len(destinations)), names, strict=True)]


def _port_name(destination: inventory.Pod, traffic: evaluate.Traffic) -> str | None:
    return next((port.name for port in destination.ports
                 if port.port == traffic.port and port.protocol == traffic.protocol), None)


def build_record(cell: Cell) -> schema.PolicyTestResult:
    return {
        "from": cell.source.key,
        "to": cell.destination.key,
        "port": None if cell.traffic is None else cell.traffic.port,
        "protocol": None if cell.traffic is None else cell.traffic.protocol,
        "expected": cell.verdict.expected,
        "because": list(cell.verdict.because),
        "cni_dependent": cell.verdict.cni_dependent,
        "named_port": cell.named_port,
    }
