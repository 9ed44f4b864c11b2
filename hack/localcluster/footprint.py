"""What the local cluster costs in memory: the PSS of every process it runs.

PSS (proportional set size, /proc/PID/smaps_rollup) splits shared pages between the
processes that map them, so the sum is what the cluster adds to the machine, not the RSS sum
that counts the shared Go runtime pages of every daemon again. The processes: the daemons
`up` started (their pid files in RUN_DIR: containerd, etcd, the control plane, every node's
kubelet, containerd and kube-proxy), the containerd shims serving any of the cluster's
containerd sockets, and every process of the pods (the kubelets' cgroups: /kubepods for
node 1, /kbpf-nodeK for node K).

    python3 -m hack.localcluster.footprint STATE_DIR     prints "processes N pss_mib M ..."
"""

from __future__ import annotations

import sys
from pathlib import Path

from hack.localcluster import proc


def pss_kib(pid: int) -> int:
    """The PSS of one process in KiB; 0 if it is gone or a kernel thread."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def daemons(run_dir: Path) -> set[int]:
    """The recorded daemons that still run the binary `up` started."""
    found = set()
    for pid_file in run_dir.glob("*.pid"):
        pid = proc.alive(run_dir, pid_file.stem)
        if pid is not None:
            found.add(pid)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _cgroups(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def shims_and_pods(state_dir: Path) -> set[int]:
    """Shims serving one of the cluster's containerd sockets, and the pods' processes."""
    sockets = {str(state_dir / "containerd" / "containerd.sock")}
    sockets |= {str(p) for p in state_dir.glob("nodes/node*/containerd/containerd.sock")}
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        exe = proc.exe_of(pid) or ""
        if Path(exe).name.startswith("containerd-shim") and sockets & set(_cmdline(pid)):
            found.add(pid)
            continue
        groups = _cgroups(pid)
        if "/kubepods" in groups or "/kbpf-node" in groups:
            found.add(pid)
    return found


def main(args: list[str]) -> int:
    """Command line (see the module docstring)."""
    if len(args) != 1:
        print(__doc__.rsplit("\n\n", 1)[-1], file=sys.stderr)
        return 2
    state_dir = Path(args[0])
    own = daemons(state_dir / "run")
    rest = shims_and_pods(state_dir) - own
    own_kib = sum(pss_kib(pid) for pid in own)
    rest_kib = sum(pss_kib(pid) for pid in rest)
    print(f"processes {len(own) + len(rest)} pss_mib {(own_kib + rest_kib) / 1024:.0f} "
          f"daemons {len(own)} daemons_mib {own_kib / 1024:.0f} "
          f"shims_and_pods {len(rest)} shims_and_pods_mib {rest_kib / 1024:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
