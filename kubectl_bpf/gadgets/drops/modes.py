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
- reads: ``probe`` (bpf_probe_read_kernel) everywhere but under
  lockdown=confidentiality, which refuses that helper (and so the whole
  program). There the program reads the skb by direct BTF loads (tp_btf):
  ``btf`` on kernels with the bpf_rdonly_cast kfunc (6.2+), which turns
  skb->head + network_header into a read-only pointer to the kernel's own
  iphdr/ipv6hdr/udphdr, so nothing is lost; ``btf-bare`` before 6.2: the
  packet bytes are not BTF-typed memory, so drops carry netns, interface,
  length, reason and location but no addresses, ports or protocol, and an
  IP filter (--ip, policy-test's probes) matches nothing. The netns filter
  works in every mode.

Measured (Debian cloud kernels under qemu TCG, tests/agent inside; host native):
5.10 derived+probe (nftables drops are freed in nf_hook_slow, so NETFILTER_DROP*;
closed UDP/TCP ports NO_SOCKET*); 6.1 kernel+probe; 6.12 kernel+probe; 6.12
lockdown=confidentiality kernel+btf (endpoints, ports, IP filter all work);
6.1 lockdown=confidentiality kernel+btf-bare; 6.18 (host) kernel+probe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

REASONS_KERNEL = "kernel"
REASONS_DERIVED = "derived"
REASONS_UNKNOWN = "unknown"
READS_PROBE = "probe"
READS_BTF = "btf"
READS_BARE = "btf-bare"

LOCKDOWN_LINE = ("kernel lockdown=confidentiality and no bpf_rdonly_cast (Linux < 6.2): BPF may not read "
                 "packet headers, so drops carry no addresses, ports or protocol and an IP filter "
                 "matches nothing (netns, interface, length, reason and location are reported)")


@dataclasses.dataclass(frozen=True)
class Mode:
    reasons: str  # REASONS_*
    reads: str  # READS_*

    @property
    def headers(self) -> bool:
        """Packet headers are parsed: addresses, ports, the IP filter."""
        return self.reads != READS_BARE

    def degraded(self, release: str) -> list[str]:
        """One line per thing this node cannot do, for the start of a run."""
        lines = []
        if self.reasons == REASONS_DERIVED:
            lines.append(f"kernel {release}: kfree_skb has no drop reason; REASON is derived from the "
                         "freeing function where unambiguous (marked *), else UNKNOWN")
        elif self.reasons == REASONS_UNKNOWN:
            lines.append(f"kernel {release}: kfree_skb has no drop reason and kallsyms hides addresses "
                         "(need CAP_SYSLOG): every REASON is UNKNOWN")
        if self.reads == READS_BARE:
            lines.append(LOCKDOWN_LINE)
        return lines

    def to_record(self, release: str) -> dict[str, Any]:
        return {"reasons": self.reasons, "reads": self.reads, "headers": self.headers,
                "degraded": self.degraded(release)}


def label(mode: dict[str, Any]) -> str:
    """How the summary names a mode record: kernel reasons / derived reasons, degraded."""
    reasons = str(mode.get("reasons", REASONS_KERNEL))
    text = {REASONS_KERNEL: "kernel reasons", REASONS_DERIVED: "derived reasons (*)",
            REASONS_UNKNOWN: "no reasons"}.get(reasons, reasons)
    return text if mode.get("headers", True) else text + ", no packet headers (lockdown)"
