"""Drop reason names, read from the running kernel's BTF.

``enum skb_drop_reason`` is renumbered between kernel releases, so names are
never taken from a table. Since 6.4 a subsystem may put its own reasons in
bits 16-31 (``enum skb_drop_reason_subsys``); their enums live in module BTF,
so such a code is shown as ``<SUBSYSTEM>:<code>`` unless a name is known.

Kernels whose kfree_skb carries no reason (before 5.17, unless backported)
get a derived table instead: a reason is inferred from the function that
freed the packet, only for functions whose every kfree_skb means one reason
(LOCATION_REASONS), and UNKNOWN otherwise.
"""

from __future__ import annotations

from typing import Iterable, Mapping

CORE_PREFIX = "SKB_DROP_REASON_"
SUBSYS_PREFIX = "SKB_DROP_REASON_SUBSYS_"
SUBSYS_SHIFT = 16
# Enumerators that are not drops at all: SKB_CONSUMED is a normal free, the
# others are markers.
NOT_DROPS = ("SKB_NOT_DROPPED_YET", "SKB_CONSUMED", "SKB_DROP_REASON_MAX", "SKB_DROP_REASON_SUBSYS_MASK")


UNKNOWN = "UNKNOWN"

# Freeing function -> the reason the kernel gives its drops since 5.17, for
# kernels without reasons. Only functions where the reason is (almost)
# unambiguous; the agent matches the drop's location against each function's
# address range from /proc/kallsyms (".cold" parts included).
LOCATION_REASONS: dict[str, str] = {
    "nf_hook_slow": "NETFILTER_DROP",  # frees only on an NF_DROP verdict
    "__udp4_lib_rcv": "NO_SOCKET",  # no socket bound to the port (checksum errors also free here)
    "__udp6_lib_rcv": "NO_SOCKET",
    "tcp_v4_rcv": "NO_SOCKET",  # no listener: the RST is sent, then the segment freed
    "tcp_v6_rcv": "NO_SOCKET",
    "sch_handle_ingress": "TC_INGRESS",  # a tc ingress filter said TC_ACT_SHOT
    "sch_handle_egress": "TC_EGRESS",
}


class ReasonTable:
    """Code <-> name for one kernel. Names lose the SKB_DROP_REASON_ prefix,
    as in the kernel's own drop_reasons[] strings (``NO_SOCKET``)."""

    def __init__(self, core: Mapping[str, int], subsystems: Mapping[str, int], *,
                 derived: bool = False) -> None:
        self.derived = derived  # names inferred from locations; code 0 is UNKNOWN
        self._names: dict[int, str] = {0: UNKNOWN} if derived else {}
        for enumerator, code in core.items():
            if enumerator not in NOT_DROPS:
                self._names[code] = enumerator.removeprefix(CORE_PREFIX)
        self._subsystems = {code: name.removeprefix(SUBSYS_PREFIX)
                            for name, code in subsystems.items() if not name.endswith("_NUM")}
        self._codes = {name: code for code, name in self._names.items() if name != UNKNOWN}

    @classmethod
    def from_locations(cls, names: Iterable[str] = LOCATION_REASONS.values()) -> "ReasonTable":
        """The derived table: one code (from 1) per reason name, in sorted order."""
        return cls({CORE_PREFIX + name: code for code, name in enumerate(sorted(set(names)), 1)}, {},
                   derived=True)

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
