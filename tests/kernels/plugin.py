"""pytest plugin loaded in the guest (``-p tests.kernels.plugin``): which gadget each test ran.

The table's columns are gadgets, found from what a test actually started, not from file names:
an audit hook sees every subprocess the test (or its fixtures) spawns, and
``python -m kubectl_bpf <gadget> ...`` or ``python -m kubectl_bpf.agent --spec {"gadget": ...}``
names the gadget. A test that starts none (in-process loader and libbpf checks) is "agent".
The result is a JUnit property ``gadgets``, so a new gadget needs no change here.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional, Sequence

import pytest

_seen: set[str] = set()


def gadget_of(argv: Sequence[str]) -> Optional[str]:
    """The gadget a command line runs, or None when it does not run kubectl-bpf."""
    args = [str(a) for a in argv]
    for i, arg in enumerate(args[:-1]):
        if arg == "-m" and args[i + 1] == "kubectl_bpf" and i + 2 < len(args):
            return args[i + 2]
        if arg == "-m" and args[i + 1] == "kubectl_bpf.agent":
            for j, flag in enumerate(args[:-1]):
                if flag == "--spec":
                    gadget = json.loads(args[j + 1]).get("gadget")
                    return str(gadget) if gadget else None
    return None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen" and isinstance(args[1], (list, tuple)):
        try:
            gadget = gadget_of(args[1])
        except (ValueError, AttributeError):
            return
        if gadget:
            _seen.add(gadget)


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(_audit)


def pytest_runtest_setup(item: pytest.Item) -> None:
    _seen.clear()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    item.user_properties.append(("gadgets", ",".join(sorted(_seen)) or "agent"))
