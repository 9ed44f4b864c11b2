"""Which network namespaces belong to this node, found by scanning the host's /proc.

On a real node the kernel is the node: everything it sees is ours. On a
cluster whose nodes share one kernel (hack/local-cluster: node 1 in the init
netns, nodes 2..N each in their own netns with their own kubelet and
containerd) the kernel sees every node, so an agent that reported all of it
would report one drop once per node. The node is then:

* its root netns R: the netns of the containerd shim that is our own
  container's parent (a node's containerd runs in the node's root netns, and
  so do the shims it starts);
* the netns of every process whose parent is a shim whose netns is R: the
  pods' sandboxes and containers on this node.

The kernel is shared when /host/proc shows a kubelet whose netns is not R;
only then is the agent scoped. The scan reads only ``status`` and ``ns/net``
so it works with hostPID false, through the host's /proc mounted in the pod.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

SHIM_PREFIX = "containerd-shim"
KUBELET = "kubelet"


@dataclasses.dataclass(frozen=True)
class Process:
    """The fields of /proc/PID/status and ns/net the scope needs."""

    pid: int
    ppid: int
    name: str
    nspid: tuple[int, ...]  # host PID first, innermost PID namespace last
    netns: Optional[int]  # None when ns/net cannot be read (exited, or a kernel thread)


@dataclasses.dataclass(frozen=True)
class NodeScope:
    """The node's netns set. ``shared_kernel`` false means no restriction."""

    shared_kernel: bool
    root_netns: Optional[int]  # None when we are not under a containerd shim (run by hand)
    netns: frozenset[int]

    def to_record(self) -> dict[str, object]:
        return {"shared_kernel": self.shared_kernel, "root_netns": self.root_netns,
                "netns": len(self.netns)}


def _read_status(path: str) -> Optional[tuple[int, str, tuple[int, ...]]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as status:
            text = status.read()
    except OSError:
        return None  # exited while we scanned
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        ppid = int(fields["PPid"])
    except (KeyError, ValueError):
        return None
    nspid = tuple(int(p) for p in fields.get("NSpid", "").split() if p.isdigit())
    return ppid, fields.get("Name", "").strip(), nspid


def scan(proc_root: str) -> dict[int, Process]:
    """Every process of the host /proc at proc_root, by host PID."""
    found: dict[int, Process] = {}
    try:
        entries = [entry for entry in os.listdir(proc_root) if entry.isdigit()]
    except OSError:
        return found
    for entry in entries:
        status = _read_status(os.path.join(proc_root, entry, "status"))
        if status is None:
            continue
        try:
            inode: Optional[int] = os.stat(os.path.join(proc_root, entry, "ns", "net")).st_ino
        except OSError:
            inode = None
        ppid, name, nspid = status
        found[int(entry)] = Process(int(entry), ppid, name, nspid, inode)
    return found


def own_host_pid(processes: dict[int, Process], pid: int, pid_ns_pids: Optional[set[int]] = None
                 ) -> Optional[int]:
    """Our host PID: the process whose innermost NSpid is our own PID. Many
    containers have a PID 1, so when ``pid_ns_pids`` (host PIDs sharing our PID
    namespace) is given the match must be among them."""
    for process in processes.values():
        if process.nspid and process.nspid[-1] == pid \
                and (pid_ns_pids is None or process.pid in pid_ns_pids):
            return process.pid
    return None


def _shim_ancestor(processes: dict[int, Process], pid: int) -> Optional[Process]:
    seen: set[int] = set()
    current = processes.get(pid)
    while current is not None and current.pid not in seen:
        seen.add(current.pid)
        if current.name.startswith(SHIM_PREFIX):
            return current
        current = processes.get(current.ppid)
    return None


def node_scope(processes: dict[int, Process], host_pid: Optional[int]) -> NodeScope:
    """The scope of the node running host_pid (see the module docstring)."""
    shim = _shim_ancestor(processes, host_pid) if host_pid is not None else None
    root = shim.netns if shim is not None else None
    if root is None:
        return NodeScope(shared_kernel=False, root_netns=None, netns=frozenset())
    shared = any(p.name == KUBELET and p.netns is not None and p.netns != root
                 for p in processes.values())
    node_shims = {p.pid for p in processes.values()
                  if p.name.startswith(SHIM_PREFIX) and p.netns == root}
    members = {root} | {p.netns for p in processes.values()
                        if p.ppid in node_shims and p.netns is not None}
    return NodeScope(shared_kernel=shared, root_netns=root, netns=frozenset(members))


def _pid_ns_members(processes: dict[int, Process], proc_root: str) -> Optional[set[int]]:
    try:
        own = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    members = set()
    for pid in processes:
        try:
            if os.stat(os.path.join(proc_root, str(pid), "ns", "pid")).st_ino == own:
                members.add(pid)
        except OSError:
            continue
    return members


def discover(proc_root: str) -> NodeScope:
    """The running agent's node scope, read from the host /proc at proc_root."""
    processes = scan(proc_root)
    host_pid = own_host_pid(processes, os.getpid(), _pid_ns_members(processes, proc_root))
    return node_scope(processes, host_pid)
