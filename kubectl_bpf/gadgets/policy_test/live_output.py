"""Live policy-test output: the probe table, the matrix per port, JSON and JUnit.

Pure rendering: takes results, returns text; the command writes it (data to stdout,
the JUnit file where ``--junit`` says).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

import tabulate

from kubectl_bpf.gadgets.policy_test import live_plan, queries

HEADERS = ["FROM", "TO", "PORT", "EXPECTED", "OBSERVED", "VERDICT", "WHERE/WHY"]


def expected_text(probe: live_plan.PlannedProbe) -> str:
    """``allow (x/web ingress[0])``: the expectation and the rules that decide it."""
    because = "; ".join(probe.computed.because)
    declared = ""
    if probe.declared and probe.declared != probe.computed.expected:
        declared = f" [declared {probe.declared}]"
    text = probe.computed.expected + declared
    return f"{text} ({because})" if because else text


def render_table(results: Sequence[live_plan.Result]) -> str:
    rows = [[result.probe.source.key, result.probe.destination.key, result.probe.port_title,
             expected_text(result.probe), result.observed, result.verdict,
             " | ".join(result.where) if result.where else "-"] for result in results]
    return tabulate.tabulate(rows, headers=HEADERS, tablefmt="plain", disable_numparse=True)


def render_matrices(results: Sequence[live_plan.Result]) -> str:
    """One grid per port: rows are sources, columns destinations, cells verdict symbols."""
    by_port: dict[str, list[live_plan.Result]] = {}
    for result in results:
        by_port.setdefault(result.probe.port_title, []).append(result)
    blocks = []
    for title, port_results in by_port.items():
        sources = list(dict.fromkeys(result.probe.source.key for result in port_results))
        destinations = list(dict.fromkeys(result.probe.destination.key for result in port_results))
        cells = {(r.probe.source.key, r.probe.destination.key): _symbol(r) for r in port_results}
        rows = [[source, *(cells.get((source, destination), " ") for destination in destinations)]
                for source in sources]
        blocks.append(f"port {title}\n" + tabulate.tabulate(
            rows, headers=["FROM \\ TO", *destinations], tablefmt="plain", disable_numparse=True))
    return "\n\n".join(blocks) + "\n\n" + live_plan.LEGEND


def _symbol(result: live_plan.Result) -> str:
    if result.probe.skip is not None and not result.attempts:
        return live_plan.NOT_PROBED
    return live_plan.SYMBOLS[result.verdict]


def render_summary(results: Sequence[live_plan.Result], *, wall_s: float, attempts: int) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    parts = ", ".join(f"{counts[verdict]} {verdict}" for verdict in live_plan.VERDICTS if verdict in counts)
    rate = f", {attempts / wall_s:.1f} attempts/s" if wall_s > 0 and attempts else ""
    return f"{len(results)} probes: {parts or 'none'}; {attempts} attempts in {wall_s:.1f}s{rate}"


def result_record(result: live_plan.Result) -> dict[str, Any]:
    """The offline record (schema.PolicyTestResult) plus what was observed."""
    probe = result.probe
    return {
        "from": probe.source.key, "to": probe.destination.key, "port": probe.port, "protocol": probe.protocol,
        "expected": probe.computed.expected, "because": list(probe.computed.because),
        "cni_dependent": probe.computed.cni_dependent, "named_port": probe.named_port,
        "declared": probe.declared, "name": probe.name, "dst_ip": probe.destination.ip,
        "node": result.node, "observed": result.observed, "verdict": result.verdict,
        "where": list(result.where), "attempts": list(result.attempts),
    }


def render_json(results: Sequence[live_plan.Result], *, summary: Mapping[str, Any]) -> str:
    return json.dumps({"results": [result_record(result) for result in results], "summary": dict(summary)},
                      ensure_ascii=False, indent=None, separators=(",", ": "))


def render_junit(results: Sequence[live_plan.Result], *, wall_s: float, suite: str = "policy-test") -> str:
    """One testcase per probe: failures for every failing verdict, skipped for undefined."""
    failures = sum(1 for result in results if result.verdict in live_plan.FAILURES - {"ERROR"})
    errored = sum(1 for result in results if result.verdict == "ERROR")
    skipped = sum(1 for result in results if result.verdict == "UNDEFINED")
    root = ElementTree.Element("testsuites")
    element = ElementTree.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(results)), "failures": str(failures), "errors": str(errored),
        "skipped": str(skipped), "time": f"{wall_s:.3f}"})
    for result in results:
        probe = result.probe
        name = f"{probe.source.key} -> {probe.destination.key}:{probe.port_title}"
        case = ElementTree.SubElement(element, "testcase", {
            "classname": probe.name or suite, "name": name})
        detail = (f"expected {expected_text(probe)}; observed {result.observed}; "
                  f"{' | '.join(result.where) or '-'}")
        if result.verdict == "ERROR":
            ElementTree.SubElement(case, "error", {"message": result.verdict}).text = detail
        elif result.verdict in live_plan.FAILURES:
            failure = ElementTree.SubElement(case, "failure", {"message": result.verdict,
                                                                "type": result.verdict})
            failure.text = detail
        elif result.verdict == "UNDEFINED":
            ElementTree.SubElement(case, "skipped", {"message": detail})
        ElementTree.SubElement(case, "system-out").text = detail
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def port_specs_text(specs: Sequence[queries.PortSpec]) -> str:
    return ", ".join(str(spec) for spec in specs) or "the destinations' ports"
