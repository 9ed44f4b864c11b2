"""Fixtures for the policy-test unit tests: YAML cases checked as truth tables.

A case file in ``cases/`` holds ``cluster`` (Kubernetes objects, as exported) and
any of:

- ``tables``: per ``port`` (as given to ``--port``), a text grid whose first line
  names destinations and whose other lines start with a source, one symbol per
  cell as the command prints them (✓ allow, ✗ deny, ? undefined, a trailing *
  for CNI-dependent). Pods not named are not checked.
- ``expect``: single cells with ``from``, ``to``, ``port``, ``expected`` and
  optionally ``because`` (the exact list), ``because_has`` (substrings each found
  in some entry) and ``cni_dependent``.

Every checked cell goes through the command's path (``queries`` + the indexed
matrix) and must equal the reference ``evaluate_pair`` as well.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kubectl_bpf.gadgets.policy_test import evaluate, inventory, queries, schema

CASES = pathlib.Path(__file__).parent / "cases"

def load_case(name: str) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load((CASES / f"{name}.yaml").read_text(encoding="utf-8"))
    return case


def case_inventory(case: dict[str, Any]) -> inventory.Inventory:
    return inventory.parse_objects([{"apiVersion": "v1", "kind": "List", "items": case["cluster"]}])


def symbol_of(verdict: evaluate.Verdict) -> str:
    symbol = schema.SYMBOLS[verdict.expected]
    return symbol + schema.CNI_DEPENDENT_MARK if verdict.cni_dependent else symbol


def evaluate_port(inv: inventory.Inventory, port: str) -> dict[tuple[str, str], queries.Cell]:
    """Every cell of one ``--port`` value, after checking each against the reference."""
    group = next(queries.evaluate_groups(evaluate.PolicyIndex(inv), pods=inv.pods,
                                         specs=[queries.parse_port_spec(port)]))
    cells = {(cell.source.key, cell.destination.key): cell for cell in group.cells}
    for cell in cells.values():
        if cell.traffic is not None:
            reference = evaluate.evaluate_pair(inv, source=cell.source, destination=cell.destination,
                                               traffic=cell.traffic)
            assert cell.verdict == reference, f"matrix and reference differ on {cell}"
    return cells


@pytest.fixture
def named_ports_file(tmp_path: pathlib.Path) -> pathlib.Path:
    """The named_ports case as a kind: List file, as kubectl would export it."""
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                    "items": load_case("named_ports")["cluster"]}), encoding="utf-8")
    return path


@pytest.fixture
def check_case() -> Callable[[str], inventory.Inventory]:
    def check(name: str) -> inventory.Inventory:
        case = load_case(name)
        inv = case_inventory(case)
        by_port: dict[str, dict[tuple[str, str], queries.Cell]] = {}

        def cell(port: object, source: str, destination: str) -> queries.Cell:
            if str(port) not in by_port:
                by_port[str(port)] = evaluate_port(inv, str(port))
            cells = by_port[str(port)]
            assert (source, destination) in cells, f"{source} -> {destination} is not in the case"
            return cells[source, destination]

        mismatches: list[str] = []
        for table in case.get("tables", []):
            header, *lines = (line.split() for line in table["rows"].strip().splitlines())
            for source, *symbols in lines:
                assert len(symbols) == len(header) - 1, f"row {source} of port {table['port']} is ragged"
                for destination, want in zip(header[1:], symbols, strict=True):
                    got = symbol_of(cell(table["port"], source, destination).verdict)
                    if got != want:
                        mismatches.append(f"port {table['port']}: {source} -> {destination}: "
                                          f"expected {want}, got {got}")
        assert not mismatches, "\n".join(mismatches)

        for row in case.get("expect", []):
            verdict = cell(row["port"], row["from"], row["to"]).verdict
            where = f"port {row['port']}: {row['from']} -> {row['to']}: {verdict}"
            assert verdict.expected == row["expected"], where
            if "because" in row:
                assert list(verdict.because) == row["because"], where
            for fragment in row.get("because_has", []):
                assert any(fragment in entry for entry in verdict.because), f"{fragment!r} not in {where}"
            if "cni_dependent" in row:
                assert verdict.cni_dependent == row["cni_dependent"], where
        return inv

    return check
