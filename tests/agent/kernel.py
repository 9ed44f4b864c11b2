"""What the running kernel lets the drops object do, read the way the agent
reads it (BTF, lockdown, KUBECTL_BPF_DROPS_PROGRAM), so each agent test
asserts this kernel's documented behaviour (gadgets/drops/modes.py) instead
of skipping where it differs: derived reasons before 5.17, the freeing
function of netfilter drops, no headers under lockdown before 6.2."""

from __future__ import annotations

import dataclasses
import functools
import os

from kubectl_bpf.agent import libbpf, preflight, reasons
from kubectl_bpf.gadgets.drops import modes, node

# Where an nftables drop is freed: nft_do_chain on recent kernels (6.18 here),
# which free with the reason themselves; nf_hook_slow on the NF_DROP verdict
# before (6.1, 5.10).
NETFILTER_FUNCTIONS = ("nft_do_chain+0x", "nf_hook_slow+0x")


@dataclasses.dataclass(frozen=True)
class Kernel:
    release: str
    kernel_reasons: bool  # kfree_skb passes enum skb_drop_reason
    reads: str  # modes.READS_*
    program: str  # what the agent will attach

    @property
    def headers(self) -> bool:
        return self.reads != modes.READS_BARE

    @property
    def reason_source(self) -> str:
        return "kernel" if self.kernel_reasons else "location"

    def reason(self, name: str) -> str:
        """What a drop the kernel would call `name` shows here."""
        if self.kernel_reasons or name in reasons.LOCATION_REASONS.values():
            return name
        return reasons.UNKNOWN



@functools.lru_cache(maxsize=1)
def running() -> Kernel:
    btf = libbpf.Btf.load_vmlinux()
    try:
        with_reasons = btf.typedef_proto_params("btf_trace_kfree_skb") >= node.REASON_PARAMS
        has_cast = btf.find("bpf_rdonly_cast", libbpf.BTF_KIND_FUNC) > 0
    finally:
        btf.free()
    forced = os.environ.get(node.PROGRAM_ENV)
    if forced:
        program = forced
    elif preflight.lockdown_mode() == "confidentiality":
        program = (node.LOCKED if has_cast else node.LOCKED_BARE).program
    else:
        program = node.VARIANTS[0].program
    return Kernel(release=os.uname().release, kernel_reasons=with_reasons,
                  reads=node.READS.get(program, modes.READS_PROBE), program=program)
