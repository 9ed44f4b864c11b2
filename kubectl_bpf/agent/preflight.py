"""Checks before anything is loaded, each failing with one line and its own
exit code: BTF, the tracepoint, privileges, memlock. Lockdown is read and
reported, never refused: the gadgets degrade under it (drops/modes.py).

Peers' users mostly fail on exactly these (kubectl-trace: kernel headers and
BTF), so they are checked first and reported in the ``preflight`` record.
"""

from __future__ import annotations

import dataclasses
import os
import resource

from kubectl_bpf.agent import errors, libbpf

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
TRACEFS_ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# Capabilities worth reporting, by bit number (linux/capability.h).
CAPABILITIES = {12: "NET_ADMIN", 19: "SYS_PTRACE", 21: "SYS_ADMIN", 24: "SYS_RESOURCE",
                34: "SYSLOG", 38: "PERFMON", 39: "BPF"}
# Before 5.11 BPF memory counted against RLIMIT_MEMLOCK; since then memcg.
MEMCG_ACCOUNTING = (5, 11)


@dataclasses.dataclass(frozen=True)
class HostFacts:
    kernel: str
    btf: bool
    capabilities: tuple[str, ...]
    lockdown: str
    tracefs: bool  # the classic tracepoint can be used


def kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def effective_capabilities(status_path: str = "/proc/self/status") -> tuple[str, ...]:
    with open(status_path, encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                mask = int(line.split()[1], 16)
                return tuple(name for bit, name in sorted(CAPABILITIES.items()) if mask >> bit & 1)
    return ()


LOCKDOWN = "/sys/kernel/security/lockdown"


def lockdown_mode(path: str = LOCKDOWN) -> str:
    """The bracketed mode of ``none [integrity] confidentiality``; "unknown" when
    securityfs is not mounted (common in pods), and the gadget then learns it
    from which program the kernel accepts."""
    try:
        with open(path, encoding="ascii") as lockdown:
            text = lockdown.read()
    except OSError:
        return "unknown"
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else text.strip()


def _raise_memlock(kernel: tuple[int, int]) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError) as exc:
        if kernel < MEMCG_ACCOUNTING:
            soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            raise errors.PrivilegeError(
                f"RLIMIT_MEMLOCK is {soft} bytes and cannot be raised on kernel < 5.11: "
                "need CAP_SYS_RESOURCE or `ulimit -l unlimited`") from exc


def check_host(*, btf_types: tuple[str, ...], tracepoint: str, reads_kernel_memory: bool = True) -> HostFacts:
    """Raise the first failing check; return what was found otherwise.
    btf_types: typedefs/enums the gadget's programs need (their absence
    means the kernel is too old); tracepoint: "subsystem/event"; a gadget
    that never reads kernel memory through a helper runs under lockdown."""
    release = os.uname().release
    if not os.path.exists(VMLINUX_BTF):
        raise errors.UnsupportedError(
            f"kernel {release} has no BTF ({VMLINUX_BTF} missing): CO-RE programs need "
            "CONFIG_DEBUG_INFO_BTF=y")
    capabilities = effective_capabilities()
    if not ("BPF" in capabilities and "PERFMON" in capabilities) and "SYS_ADMIN" not in capabilities:
        raise errors.PrivilegeError("tracing needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): "
                                    "run as root or grant the capabilities")
    mode = lockdown_mode()
    if mode == "confidentiality" and reads_kernel_memory:
        raise errors.UnsupportedError("kernel lockdown is 'confidentiality': BPF may not read kernel memory")
    _raise_memlock(kernel_version(release))
    try:
        btf = libbpf.Btf.load_vmlinux()
    except libbpf.LibbpfError as exc:
        raise errors.UnsupportedError(str(exc)) from exc
    try:
        for name in btf_types:
            if btf.find(name, libbpf.BTF_KIND_TYPEDEF) < 0 and btf.find(name, libbpf.BTF_KIND_ENUM) < 0:
                raise errors.UnsupportedError(
                    f"kernel {release} lacks {name} in its BTF: the {tracepoint} tracepoint "
                    "with BTF is needed")
    finally:
        btf.free()
    tracefs = any(os.path.isdir(os.path.join(root, "events", tracepoint)) for root in TRACEFS_ROOTS)
    return HostFacts(kernel=release, btf=True, capabilities=capabilities, lockdown=mode, tracefs=tracefs)
