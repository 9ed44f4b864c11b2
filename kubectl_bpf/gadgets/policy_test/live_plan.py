"""Live policy-test, pure half: which probes to send, and what their records mean.

From the evaluator's expectations to probes (one per source, destination and port),
grouped by the source's node into the probe gadget's params; then from the agents'
``probe`` records back to one verdict per probe. No I/O, no click, no kubernetes:
``live_cluster`` reads the cluster and runs the session, ``live_output`` renders.

An attempt is *reachable* when the destination's stack saw the packet: CONNECTED,
DELIVERED, or REFUSED with arrival evidence (a TCP RST from a closed port is the
port, not a policy). It is *blocked* when it timed out or was refused on the way
(kube-router and most enforcers REJECT: an ICMP port unreachable, rate-limited, so
blocked traffic shows as REFUSED or TIMEOUT). ERROR and ABORTED attempts say nothing
about the network. Verdicts, per probe:

- PASS: every attempt agrees with the expectation.
- UNEXPECTED-DENY: expected allow, every attempt blocked; the drops say where/why.
- UNEXPECTED-ALLOW: expected deny, every attempt reachable (the policy is not enforced).
- FLAKY: attempts disagree. Never retried into a pass.
- INTENT-MISMATCH: the probe agrees with the computed expectation, but a declared one
  (``--expect``, a spec file) differs from it.
- UNDEFINED: NetworkPolicy does not define the flow (self, hostNetwork, missing named
  port, SCTP or "any port" that cannot be probed): observed if probed, never a failure.
- ERROR: no attempt could be judged (the probe could not be sent, the run stopped).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from kubectl_bpf.gadgets.policy_test import (
    evaluate,
    exitcodes,
    inventory,
    probe_outcome,
    probe_params,
    probe_schema,
    queries,
    schema,
)
from kubectl_bpf.protocol import exitcodes as shared_exitcodes

Verdict = Literal["PASS", "UNEXPECTED-DENY", "UNEXPECTED-ALLOW", "FLAKY", "INTENT-MISMATCH",
                  "UNDEFINED", "ERROR"]
VERDICTS: tuple[Verdict, ...] = ("PASS", "UNEXPECTED-DENY", "UNEXPECTED-ALLOW", "FLAKY",
                                 "INTENT-MISMATCH", "UNDEFINED", "ERROR")
FAILURES: frozenset[Verdict] = frozenset({"UNEXPECTED-DENY", "UNEXPECTED-ALLOW", "FLAKY",
                                          "INTENT-MISMATCH", "ERROR"})
# Matrix cells: one symbol per verdict.
SYMBOLS: dict[Verdict, str] = {"PASS": "✓", "UNEXPECTED-DENY": "D", "UNEXPECTED-ALLOW": "A",
                               "FLAKY": "F", "INTENT-MISMATCH": "I", "UNDEFINED": "?", "ERROR": "E"}
LEGEND = ("✓ pass   D unexpected deny   A unexpected allow   F flaky   I intent mismatch   "
          "? undefined   E error   . not probed")
NOT_PROBED = "."

REACHABLE_OUTCOMES = frozenset({"CONNECTED", "DELIVERED"})
ERROR_OUTCOMES = frozenset({"ERROR", "ABORTED"})

EXTERNAL_INGRESS = "ingress: the destination is not a pod: only the source's egress policies apply"


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a probe goes: a pod (``pod`` set) or a bare address."""

    key: str  # "ns/pod" or the address
    ip: str | None
    pod: inventory.Pod | None = None


@dataclasses.dataclass(frozen=True)
class PlannedProbe:
    """One row of the result. ``skip`` says why it is not probed (None: it is)."""

    id: str
    source: inventory.Pod
    destination: Destination
    port: int | None
    protocol: str | None
    computed: evaluate.Verdict
    named_port: str | None = None
    declared: schema.Expected | None = None
    skip: str | None = None
    name: str | None = None  # a spec file's test name

    @property
    def port_title(self) -> str:
        if self.port is None:
            return "-" if self.protocol is None else f"any/{self.protocol}"
        return f"{self.port}/{self.protocol}"


@dataclasses.dataclass(frozen=True)
class Result:
    probe: PlannedProbe
    verdict: Verdict
    observed: str  # "CONNECTED x3", "TIMEOUT 2/3, CONNECTED 1/3", "-"
    where: tuple[str, ...]  # the evidence, or why nothing was observed
    attempts: tuple[dict[str, Any], ...]
    node: str | None


# -- planning -----------------------------------------------------------------------------


def probe_id(number: int) -> str:
    """Short on purpose: the id travels in every UDP probe's payload."""
    return f"p{number}"


def _skip_reason(source: inventory.Pod, destination: Destination,
                 traffic: evaluate.Traffic | None) -> str | None:
    if destination.pod is source:
        return "a pod's traffic to itself is not probed"
    if traffic is None:
        return "no such named port on the destination"
    if traffic.port is None:
        return "'any other port' cannot be probed: name a port with --port"
    if traffic.protocol not in probe_params.PROTOCOLS:
        return f"{traffic.protocol} probes are not supported (TCP and UDP are)"
    if destination.ip is None:
        return "the destination has no IP address"
    if not source.ips:
        return "the source has no IP address"
    return None


def plan_cells(cells: Iterable[queries.Cell], *, first_number: int = 0,
               declared: schema.Expected | None = None, name: str | None = None) -> list[PlannedProbe]:
    """Probes for the evaluator's cells (queries.evaluate_groups), in its order."""
    planned = []
    for number, cell in enumerate(cells, start=first_number):
        destination = pod_destination(cell.destination)
        traffic = cell.traffic
        planned.append(PlannedProbe(
            id=probe_id(number), source=cell.source, destination=destination,
            port=None if traffic is None else traffic.port,
            protocol=None if traffic is None else traffic.protocol,
            computed=cell.verdict, named_port=cell.named_port, declared=declared, name=name,
            skip=_skip_reason(cell.source, destination, traffic)))
    return planned


def pod_destination(pod: inventory.Pod) -> Destination:
    """A pod is probed at its primary IP, the one the evaluator matches ipBlocks against."""
    return Destination(key=pod.key, ip=str(pod.ips[0]) if pod.ips else None, pod=pod)


def plan_external(inv: inventory.Inventory, *, source: inventory.Pod, address: str,
                  specs: Sequence[queries.PortSpec], first_number: int = 0,
                  declared: schema.Expected | None = None, name: str | None = None) -> list[PlannedProbe]:
    """Probes to an address that is no pod's: only the source's egress decides."""
    destination = Destination(key=address, ip=address)
    ip = ipaddress.ip_address(address)
    planned = []
    for number, spec in enumerate(specs, start=first_number):
        if not isinstance(spec.port, int):
            traffic = None
            verdict = evaluate.Verdict("undefined", (f"a named port ({spec.port}) needs a pod destination",))
        else:
            traffic = evaluate.Traffic(spec.port, spec.protocol or "TCP")
            verdict = evaluate_external(inv, source=source, ip=ip, traffic=traffic)
        planned.append(PlannedProbe(
            id=probe_id(number), source=source, destination=destination,
            port=None if traffic is None else traffic.port,
            protocol=None if traffic is None else traffic.protocol,
            computed=verdict, declared=declared, name=name, skip=_skip_reason(source, destination, traffic)))
    return planned


def evaluate_external(inv: inventory.Inventory, *, source: inventory.Pod, ip: inventory.IPAddress,
                      traffic: evaluate.Traffic) -> evaluate.Verdict:
    """The egress side alone: selectors never match an address outside the pods, ipBlocks may."""
    if source.host_network:
        return evaluate.UNDEFINED_HOST_SOURCE
    isolated_by: list[str] = []
    allowed_by: list[str] = []
    for policy in inv.policies:
        if (policy.namespace != source.namespace or not policy.isolates_egress
                or not policy.pod_selector.matches(source.labels)):
            continue
        isolated_by.append(policy.key)
        for index, rule in enumerate(policy.egress):
            if not evaluate.ports_match(rule.ports, traffic, None):
                continue
            if not rule.peers:
                allowed_by.append(f"{policy.key} egress[{index}]")
            elif any(peer.ip_block is not None and peer.ip_block.contains(ip) for peer in rule.peers):
                allowed_by.append(f"{policy.key} egress[{index}] via ipBlock")
    if not isolated_by:
        return evaluate.Verdict("allow", ("egress: no policy isolates the source", EXTERNAL_INGRESS))
    if allowed_by:
        return evaluate.Verdict("allow", (*allowed_by, EXTERNAL_INGRESS))
    return evaluate.Verdict("deny", (f"egress: the source is isolated by {', '.join(isolated_by)} and no "
                                     "egress rule allows this address and port",))


def build_params(probes: Sequence[PlannedProbe], *, container_of: Mapping[str, str], attempts: int,
                 timeout_s: float, rate_per_s: float) -> probe_params.ProbeParams:
    """The probe gadget's params for the probes one node sends (its sources run there).
    ``container_of`` maps a source pod key to one of its running containers: any of
    them names the pod's netns."""
    specs = tuple(probe_params.ProbeSpec(
        id=probe.id, src=probe_params.ProbeSource(container_id=container_of[probe.source.key]),
        dst_ip=str(probe.destination.ip), port=int(probe.port or 0), protocol=str(probe.protocol),
        attempts=attempts, timeout_s=timeout_s) for probe in probes)
    return probe_params.ProbeParams(probes=specs, rate_per_s=rate_per_s)


def run_bound_s(params: probe_params.ProbeParams) -> float:
    """A generous upper bound of a node's probing time, for the run's duration (the
    run normally ends on its count, long before)."""
    if not params.probes:
        return 0.0
    longest = max(probe.attempts * (probe.timeout_s + params.evidence_grace_s) for probe in params.probes)
    waves = -(-len(params.probes) // params.max_in_flight)
    return params.total_attempts / params.rate_per_s + longest * waves + 30.0


# -- classification -----------------------------------------------------------------------


def attempt_class(record: Mapping[str, Any]) -> Literal["reachable", "blocked", "error"]:
    outcome = record.get("outcome")
    if outcome in REACHABLE_OUTCOMES or (outcome == "REFUSED" and record.get("arrived")):
        return "reachable"
    if outcome in ERROR_OUTCOMES:
        return "error"
    return "blocked"


def describe_outcomes(attempts: Sequence[Mapping[str, Any]]) -> str:
    if not attempts:
        return "-"
    counts: dict[str, int] = {}
    for record in attempts:
        outcome = str(record.get("outcome"))
        if outcome == "REFUSED" and record.get("arrived"):
            outcome = "REFUSED(port closed)"
        counts[outcome] = counts.get(outcome, 0) + 1
    if len(counts) == 1:
        ((outcome, count),) = counts.items()
        return f"{outcome} x{count}"
    return ", ".join(f"{outcome} {count}/{len(attempts)}" for outcome, count in
                     sorted(counts.items(), key=lambda item: -item[1]))


def classify(probe: PlannedProbe, attempts: Sequence[Mapping[str, Any]], *, node: str | None,
             netns_names: Mapping[int, str], expected_attempts: int,
             node_netns_names: Mapping[str, Mapping[int, str]] | None = None) -> Result:
    """One probe's verdict from its attempts' records (see the module docstring).
    ``netns_names`` names the netns inodes of the pods on the source's node,
    ``node_netns_names`` those on the other nodes (evidence from a destination's)."""
    ordered = tuple(dict(record) for record in sorted(attempts, key=lambda r: int(r.get("attempt") or 0)))
    observed = describe_outcomes(ordered)
    if probe.skip is not None:
        return Result(probe, "UNDEFINED", observed, (probe.skip,), ordered, node)
    classes = [attempt_class(record) for record in ordered]
    errors = [record for record, kind in zip(ordered, classes, strict=True) if kind == "error"]
    judged = {kind for kind in classes if kind != "error"}
    where: list[str] = []
    if errors or len(ordered) < expected_attempts:
        missing = expected_attempts - len(ordered)
        reasons = sorted({str(record.get("error") or record.get("outcome")) for record in errors})
        if missing > 0:
            reasons.append(f"{missing} attempt(s) never reported")
        where.append("not judged: " + "; ".join(reasons))
    expected = probe.computed.expected
    if not judged:
        return Result(probe, "ERROR", observed, tuple(where), ordered, node)
    if expected == "undefined":
        verdict: Verdict = "UNDEFINED"
    elif len(judged) > 1:
        verdict = "FLAKY"
    elif judged == {"reachable"}:
        verdict = "PASS" if expected == "allow" else "UNEXPECTED-ALLOW"
    else:
        verdict = "PASS" if expected == "deny" else "UNEXPECTED-DENY"
    if verdict == "PASS" and probe.declared is not None and probe.declared != expected:
        verdict = "INTENT-MISMATCH"
    where[:0] = explain(probe, ordered, classes, verdict=verdict, node=node, netns_names=netns_names,
                        node_netns_names=node_netns_names or {})
    return Result(probe, verdict, observed, tuple(where), ordered, node)


def explain(probe: PlannedProbe, attempts: Sequence[Mapping[str, Any]], classes: Sequence[str], *,
            verdict: Verdict, node: str | None, netns_names: Mapping[int, str],
            node_netns_names: Mapping[str, Mapping[int, str]]) -> list[str]:
    """WHERE/WHY: the drops of the blocked attempts (collapsed), or what got through."""
    lines: list[str] = []
    if verdict == "INTENT-MISMATCH":
        lines.append(f"declared {probe.declared}, but the policies compute {probe.computed.expected}")
    blocked = [record for record, kind in zip(attempts, classes, strict=True) if kind == "blocked"]
    reachable = [record for record, kind in zip(attempts, classes, strict=True) if kind == "reachable"]
    if blocked and (verdict in ("UNEXPECTED-DENY", "FLAKY") or probe.computed.expected == "deny"):
        drops = collapse_evidence(blocked)
        for (reason, location, ifname, netns, direction, seen_on), count in drops.items():
            if reason == "NO_SOCKET" and direction == "forward":
                continue
            names = netns_names if seen_on is None else node_netns_names.get(seen_on, {})
            place = names.get(netns) or f"netns {netns}"
            iface = f" {ifname}" if ifname else ""
            lines.append(f"{reason} at {location} in {place}{iface} on {seen_on or node} "
                         f"({direction}, x{count})")
        if not lines or all(line.startswith("declared") for line in lines):
            refused = any(record.get("outcome") == "REFUSED" for record in blocked)
            lines.append(f"no drop seen on {node}: " + (
                "refused on the way (a reject sends ICMP unreachable)" if refused else
                "lost beyond this node or never answered"))
    if reachable and verdict in ("UNEXPECTED-ALLOW", "FLAKY"):
        connected = [record for record in reachable if record.get("outcome") == "CONNECTED"]
        if connected:
            rtts = [float(record["rtt_ms"]) for record in connected if record.get("rtt_ms") is not None]
            rtt = f" in {min(rtts):.1f} ms" if rtts else ""
            lines.append(f"connected{rtt}: nothing enforces a deny on this flow")
        else:
            lines.append("reached the destination's stack (NO_SOCKET there or a RST): "
                         "nothing enforces a deny on this flow")
    return lines


# reason, location, ifname, netns, direction, and the node that saw it when not the source's
EvidenceKey = tuple[str, str, str | None, int, str, str | None]


def collapse_evidence(attempts: Iterable[Mapping[str, Any]]) -> dict[EvidenceKey, int]:
    """Every blocked attempt's drops, same place and reason summed."""
    drops: dict[EvidenceKey, int] = {}
    for record in attempts:
        for item in record.get("evidence") or ():
            key = (str(item["reason"]), str(item["location"]), item.get("ifname"), int(item["netns"]),
                   str(item["direction"]), item.get("node"))
            drops[key] = drops.get(key, 0) + int(item.get("count") or 1)
    return drops


def add_destination_evidence(attempts: Mapping[str, Sequence[dict[str, Any]]],
                             drops: Iterable[tuple[str, Mapping[str, Any]]],
                             source_nodes: Mapping[str, str | None]) -> int:
    """Fold the drops that destination nodes' tracers reported (``(node, drop
    record)``) into the attempts they belong to, by flow as the source's agent
    matches its own (probe_outcome.EvidenceIndex), and classify each changed
    attempt again: a cross-node deny then names the drop site and the node, and
    a NO_SOCKET there proves arrival. Drops before an attempt started are not
    its own (a source port reused by a later attempt), and a drop on the
    source's own node is its agent's evidence already (``source_nodes``: probe
    id -> node). Returns how many drops were evidence."""
    index: probe_outcome.EvidenceIndex[dict[str, Any]] = probe_outcome.EvidenceIndex()
    for records in attempts.values():
        for record in sorted(records, key=lambda r: str(r.get("time") or "")):
            if record.get("src") is None or record.get("sport") is None:
                continue  # nothing was sent
            key = (str(record["protocol"]), str(record["src"]), int(record["sport"]), str(record["dst"]),
                   int(record["dport"]))
            index.unregister(key)  # the later attempt on a reused port keeps the flow
            index.register(key, record)
    matched = 0
    for node, drop in drops:
        for record, direction in index.match(drop):
            if str(drop.get("time") or "") < str(record.get("time") or "") \
                    or source_nodes.get(str(record.get("id"))) == node:
                continue
            matched += 1
            items: list[probe_schema.Evidence] = record.setdefault("evidence", [])
            for item in items:
                if (item["reason"], item["location"], item["ifname"], item["netns"], item["direction"],
                        item.get("node")) == (drop["reason"], drop["location"], drop.get("ifname"),
                                              drop["netns"], direction, node):
                    item["count"] += 1
                    break
            else:
                items.append({"reason": drop["reason"], "location": drop["location"],
                              "ifname": drop.get("ifname"), "netns": drop["netns"], "direction": direction,
                              "count": 1, "time": drop["time"], "node": node})
            # Another node's netns is never the source's, whatever its inode number.
            if direction == "forward" and drop["reason"] == "NO_SOCKET":
                record["arrived"] = True
            if record.get("socket_result") is not None:
                protocol, result = str(record["protocol"]), str(record["socket_result"])
                arrived = bool(record.get("arrived"))
                record["outcome"] = probe_outcome.classify(protocol, result, arrived=arrived)
    return matched


def exit_code(results: Iterable[Result]) -> int:
    """The lowest verdict code found (exitcodes: deny < allow < intent); else FAILURE
    when some probe could not be judged; else OK."""
    codes: set[int] = set()
    errors = False
    for result in results:
        if result.verdict == "UNEXPECTED-DENY":
            codes.add(exitcodes.UNEXPECTED_DENY)
        elif result.verdict == "UNEXPECTED-ALLOW":
            codes.add(exitcodes.UNEXPECTED_ALLOW)
        elif result.verdict == "INTENT-MISMATCH":
            codes.add(exitcodes.INTENT_MISMATCH)
        elif result.verdict == "FLAKY":
            codes.add(exitcodes.UNEXPECTED_ALLOW if result.probe.computed.expected == "deny"
                      else exitcodes.UNEXPECTED_DENY)
        elif result.verdict == "ERROR":
            errors = True
    if codes:
        return min(codes)
    return shared_exitcodes.FAILURE if errors else shared_exitcodes.OK
