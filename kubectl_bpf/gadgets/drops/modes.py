"""What the drops object can do on the running kernel, decided from its BTF
and its lockdown state, never from a version number: the one place that
lists the modes (the README's Kernels table is kept from these facts).

Two independent axes:

- reasons: ``kernel`` when the kfree_skb hook passes ``enum skb_drop_reason``
  (5.17+, or backported, e.g. RHEL 9's 5.14); ``derived`` before that, where
  REASON is inferred from the freeing function for the functions in
  reasons.LOCATION_REASONS (NETFILTER_DROP, NO_SOCKET, TC_INGRESS/TC_EGRESS)
  and is UNKNOWN otherwise; ``unknown`` when, in addition, kallsyms hides
  addresses, so nothing can be derived.
- reads: ``probe`` (bpf_probe_read_kernel: packet headers are parsed) or
  ``btf`` under lockdown=confidentiality, which refuses that helper: the
  program reads the skb by direct BTF loads (tp_btf), which gives netns,
  interface, length, reason and location, but the packet bytes behind
  skb->head are not BTF-typed memory, so no addresses, ports or protocol,
  and an IP filter matches nothing. The netns filter works.

Examples measured in qemu (tests/kernels): 5.10 derived+probe, 6.1 and 6.12
kernel+probe, 6.12 with lockdown=confidentiality kernel+btf, 6.18 kernel+probe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

REASONS_KERNEL = "kernel"
REASONS_DERIVED = "derived"
REASONS_UNKNOWN = "unknown"
READS_PROBE = "probe"
READS_BTF = "btf"

LOCKDOWN_LINE = ("kernel lockdown=confidentiality: BPF may not read packet memory, so drops carry no "
                 "addresses, ports or protocol and an IP filter matches nothing (netns, interface, "
                 "length, reason and location are reported)")


@dataclasses.dataclass(frozen=True)
class Mode:
    reasons: str  # REASONS_*
    reads: str  # READS_*

    @property
    def headers(self) -> bool:
        """Packet headers are parsed: addresses, ports, the IP filter."""
        return self.reads == READS_PROBE

    def degraded(self, release: str) -> list[str]:
        """One line per thing this node cannot do, for the start of a run."""
        lines = []
        if self.reasons == REASONS_DERIVED:
            lines.append(f"kernel {release}: kfree_skb has no drop reason; REASON is derived from the "
                         "freeing function where unambiguous (marked *), else UNKNOWN")
        elif self.reasons == REASONS_UNKNOWN:
            lines.append(f"kernel {release}: kfree_skb has no drop reason and kallsyms hides addresses "
                         "(need CAP_SYSLOG): every REASON is UNKNOWN")
        if self.reads == READS_BTF:
            lines.append(LOCKDOWN_LINE)
        return lines

    def to_record(self, release: str) -> dict[str, Any]:
        return {"reasons": self.reasons, "headers": self.headers, "degraded": self.degraded(release)}


def label(mode: dict[str, Any]) -> str:
    """How the summary names a mode record: kernel reasons / derived reasons, degraded."""
    reasons = str(mode.get("reasons", REASONS_KERNEL))
    text = {REASONS_KERNEL: "kernel reasons", REASONS_DERIVED: "derived reasons (*)",
            REASONS_UNKNOWN: "no reasons"}.get(reasons, reasons)
    return text if mode.get("headers", True) else text + ", no packet headers (lockdown)"
