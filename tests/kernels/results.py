"""Read a guest's results file back and turn many of them into one table.

The results file is what ``guest.py`` wrote to its second serial port: sections headed by
``=====KBPF <NAME>`` lines. A boot that left no END section did not finish (it hung, panicked
or was killed), which fails the run like any failed test.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from typing import Any, Optional

from tests.kernels.guest import MARK


@dataclasses.dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0  # never expected: the tier must not skip; counted as not passed


@dataclasses.dataclass
class KernelResult:
    """One matrix entry's outcome, as written to the results JSON."""

    kernel: str
    release: str = ""
    package: str = ""
    finished: bool = False
    pytest_rc: Optional[int] = None
    boot_s: float = 0.0
    preflight: dict[str, Any] = dataclasses.field(default_factory=dict)
    preflight_error: str = ""
    lockdown: str = ""
    error: str = ""
    gadgets: dict[str, Counts] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.finished and self.pytest_rc == 0 and bool(self.gadgets)
                and all(c.failed == 0 and c.skipped == 0 for c in self.gadgets.values()))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ok"] = self.ok
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in fields and k != "gadgets"})
        result.gadgets = {g: Counts(**c) for g, c in data.get("gadgets", {}).items()}
        return result


def sections(text: str) -> dict[str, str]:
    """Split a results file into its named sections."""
    found: dict[str, list[str]] = {}
    current: Optional[list[str]] = None
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            current = found.setdefault(line[len(MARK) + 1:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def parse_junit(xml_text: str) -> tuple[dict[str, Counts], list[str]]:
    """Per-gadget counts (the ``gadgets`` property the guest plugin sets) and failed test ids."""
    counts: dict[str, Counts] = {}
    failures: list[str] = []
    for case in ET.fromstring(xml_text).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        gadgets = (props.get("gadgets") or "agent").split(",")
        test_id = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
            failures.append(test_id)
        elif case.find("skipped") is not None:
            outcome = "skipped"
            failures.append(test_id + " (skipped)")
        else:
            outcome = "passed"
        for gadget in gadgets:
            c = counts.setdefault(gadget, Counts())
            setattr(c, outcome, getattr(c, outcome) + 1)
    return counts, failures


def parse(result: KernelResult, text: str) -> KernelResult:
    """Fill result from a guest's results file."""
    found = sections(text)
    result.finished = "END" in found
    if "ERROR" in found:
        result.error = found["ERROR"].splitlines()[-1]
    # securityfs shows every mode with the active one bracketed: "[none] integrity confidentiality".
    lockdown = found.get("LOCKDOWN", "")
    result.lockdown = lockdown[lockdown.find("[") + 1:lockdown.find("]")] if "[" in lockdown else lockdown
    for line in found.get("PREFLIGHT", "").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip():
                result.preflight_error = line.strip()  # stderr: the agent's one-line error
            continue
        if record.get("type") == "preflight":
            result.preflight = record
        elif record.get("type") == "error":
            result.preflight_error = str(record.get("message", record))
    if "RC" in found:
        result.pytest_rc = int(found["RC"])
    if found.get("JUNIT"):
        result.gadgets, result.failures = parse_junit(found["JUNIT"])
    elif result.finished and not result.error:
        result.error = "no JUnit XML came back"
    return result


def table(results: list[KernelResult]) -> str:
    """kernel x gadget -> passed/failed (skips, which must not happen, are shown too)."""
    gadgets = sorted({g for r in results for g in r.gadgets})
    header = ["kernel", "release", "hook", "lockdown", *gadgets, "result"]
    rows = []
    for r in results:
        hook = r.preflight.get("hook", "refused" if r.preflight_error else "?")
        cells = [r.kernel, r.release or "?", str(hook), r.lockdown or "?"]
        for g in gadgets:
            c = r.gadgets.get(g)
            cells.append("-" if c is None else f"{c.passed}/{c.failed}" + (f" ({c.skipped} skipped)"
                                                                            if c.skipped else ""))
        if r.ok:
            cells.append("ok")
        else:
            why = f": {r.error}" if r.error else ""
            cells.append("FAIL" if r.finished else f"FAIL (did not finish{why})")
        rows.append(cells)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:],
                      "(gadget columns: passed/failed tests)"])
