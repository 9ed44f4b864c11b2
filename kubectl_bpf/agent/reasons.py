"""Drop reason names, read from the running kernel's BTF.

``enum skb_drop_reason`` is renumbered between kernel releases, so names are
never taken from a table. Since 6.4 a subsystem may put its own reasons in
bits 16-31 (``enum skb_drop_reason_subsys``); their enums live in module BTF,
so such a code is shown as ``<SUBSYSTEM>:<code>`` unless a name is known.
"""

from __future__ import annotations

from typing import Mapping

CORE_PREFIX = "SKB_DROP_REASON_"
SUBSYS_PREFIX = "SKB_DROP_REASON_SUBSYS_"
SUBSYS_SHIFT = 16
# Enumerators that are not drops at all: SKB_CONSUMED is a normal free, the
# others are markers.
NOT_DROPS = ("SKB_NOT_DROPPED_YET", "SKB_CONSUMED", "SKB_DROP_REASON_MAX", "SKB_DROP_REASON_SUBSYS_MASK")


class ReasonTable:
    """Code <-> name for one kernel. Names lose the SKB_DROP_REASON_ prefix,
    as in the kernel's own drop_reasons[] strings (``NO_SOCKET``)."""

    def __init__(self, core: Mapping[str, int], subsystems: Mapping[str, int]) -> None:
        self._names: dict[int, str] = {}
        for enumerator, code in core.items():
            if enumerator not in NOT_DROPS:
                self._names[code] = enumerator.removeprefix(CORE_PREFIX)
        self._subsystems = {code: name.removeprefix(SUBSYS_PREFIX)
                            for name, code in subsystems.items() if not name.endswith("_NUM")}
        self._codes = {name: code for code, name in self._names.items()}

    def name(self, code: int) -> str:
        known = self._names.get(code)
        if known is not None:
            return known
        subsystem = code >> SUBSYS_SHIFT
        if subsystem:
            label = self._subsystems.get(subsystem, f"SUBSYS_{subsystem}")
            return f"{label}:{code & 0xFFFF}"
        return f"UNKNOWN_{code}"

    def code(self, name: str) -> int:
        """Code of a reason name, with or without the prefix, any case; KeyError if unknown."""
        key = name.upper().removeprefix(CORE_PREFIX)
        if key not in self._codes:
            raise KeyError(name)
        return self._codes[key]

    def names(self) -> list[str]:
        return sorted(self._codes)
