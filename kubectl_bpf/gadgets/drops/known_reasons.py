"""The drop reason names any supported kernel may have (known_reasons.txt),
so a typo in ``--reason`` is refused on the client, with the closest names,
before a privileged tracer Job is created for it.

Only names: codes are renumbered between releases and the agent reads its
own kernel's from BTF, refusing a name that kernel lacks.
"""

from __future__ import annotations

import difflib
import functools
import pathlib
from collections.abc import Iterable

DATA = pathlib.Path(__file__).with_name("known_reasons.txt")


@functools.cache
def names() -> frozenset[str]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def check(reasons: Iterable[str]) -> None:
    """Raise ValueError (one line) for the first name no supported kernel has."""
    known = names()
    for reason in reasons:
        if reason in known:
            continue
        closest = difflib.get_close_matches(reason.upper().removeprefix("SKB_DROP_REASON_"), sorted(known),
                                            n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(closest)}?" if closest else \
            "; see 'kubectl-bpf drops --list-reasons' on a node"
        raise ValueError(f"unknown drop reason {reason!r}: no supported kernel has it{hint}")
