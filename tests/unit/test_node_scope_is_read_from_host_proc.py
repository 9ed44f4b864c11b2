"""The node scope scan, on fake /proc trees shaped like the two kinds of cluster.

ns/net files are plain files here: processes sharing a netns share one inode
through hard links, which is all the scan compares.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubectl_bpf.agent import nodescope


class FakeProc:
    """A /proc tree: processes with a name, a parent, NSpid and a netns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.netns_files: dict[str, Path] = {}

    def netns(self, name: str) -> int:
        return os.stat(self.netns_files[name]).st_ino

    def add(self, pid: int, ppid: int, name: str, netns: str, nspid: tuple[int, ...] = ()) -> None:
        folder = self.root / str(pid)
        (folder / "ns").mkdir(parents=True)
        nspid_text = " ".join(str(p) for p in (nspid or (pid,)))
        (folder / "status").write_text(f"Name:\t{name}\nPid:\t{pid}\nPPid:\t{ppid}\nNSpid:\t{nspid_text}\n")
        if netns not in self.netns_files:
            self.netns_files[netns] = self.root / f"netns-{netns}"
            self.netns_files[netns].write_text("")
        os.link(self.netns_files[netns], folder / "ns" / "net")


def shared_kernel_cluster(tmp_path: Path) -> FakeProc:
    """Node 1 in the init netns, node 2 in its own; an agent on each, a pod on each."""
    proc = FakeProc(tmp_path)
    proc.add(1, 0, "systemd", "init")
    proc.add(10, 1, "kubelet", "init")
    proc.add(11, 1, "containerd", "init")
    proc.add(12, 1, "containerd-shim-runc-v2", "init")
    proc.add(13, 12, "pause", "pod1")
    proc.add(14, 12, "python3", "pod1")  # node 1's agent
    proc.add(15, 14, "sleep", "pod1")
    proc.add(16, 1, "containerd-shim-runc-v2", "init")
    proc.add(17, 16, "httpd", "web1")
    proc.add(20, 1, "kubelet", "node2")
    proc.add(21, 1, "containerd", "node2")
    proc.add(22, 1, "containerd-shim-runc-v2", "node2")
    proc.add(23, 22, "pause", "pod2")
    proc.add(24, 22, "python3", "pod2", nspid=(24, 1))  # node 2's agent
    proc.add(26, 1, "containerd-shim-runc-v2", "node2")
    proc.add(27, 26, "httpd", "web2", nspid=(27, 1))
    return proc


def test_each_node_on_a_shared_kernel_owns_its_root_netns_and_its_pods(tmp_path: Path) -> None:
    proc = shared_kernel_cluster(tmp_path)
    processes = nodescope.scan(str(tmp_path))
    one = nodescope.node_scope(processes, 14)
    two = nodescope.node_scope(processes, 24)
    assert one.shared_kernel and two.shared_kernel
    assert one.root_netns == proc.netns("init")
    assert one.netns == {proc.netns(n) for n in ("init", "pod1", "web1")}
    assert two.root_netns == proc.netns("node2")
    assert two.netns == {proc.netns(n) for n in ("node2", "pod2", "web2")}
    assert not one.netns & two.netns
    assert two.to_record() == {"shared_kernel": True, "root_netns": proc.netns("node2"), "netns": 3}


def test_a_real_node_is_not_restricted(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    proc.add(1, 0, "systemd", "init")
    proc.add(10, 1, "kubelet", "init")
    proc.add(12, 1, "containerd-shim-runc-v2", "init")
    proc.add(14, 12, "python3", "pod1", nspid=(14, 1))
    scope = nodescope.node_scope(nodescope.scan(str(tmp_path)), 14)
    assert not scope.shared_kernel
    assert scope.root_netns == proc.netns("init")


def test_our_host_pid_is_found_through_nspid_within_our_pid_namespace(tmp_path: Path) -> None:
    shared_kernel_cluster(tmp_path)
    processes = nodescope.scan(str(tmp_path))
    assert nodescope.own_host_pid(processes, 1, {24}) == 24
    assert nodescope.own_host_pid(processes, 1, {27}) == 27  # another container's PID 1
    assert nodescope.own_host_pid(processes, 999, None) is None


def test_an_agent_run_outside_any_container_is_unscoped(tmp_path: Path) -> None:
    shared_kernel_cluster(tmp_path)
    processes = nodescope.scan(str(tmp_path))
    assert nodescope.node_scope(processes, 11) == nodescope.NodeScope(False, None, frozenset())
    assert nodescope.node_scope(processes, None).root_netns is None


def test_processes_that_vanish_or_lack_fields_are_skipped(tmp_path: Path) -> None:
    shared_kernel_cluster(tmp_path)
    (tmp_path / "99").mkdir()  # exited: no status
    (tmp_path / "98").mkdir()
    (tmp_path / "98" / "status").write_text("Name:\tzombie\n")  # no PPid
    processes = nodescope.scan(str(tmp_path))
    assert 99 not in processes and 98 not in processes
    assert nodescope.scan(str(tmp_path / "missing")) == {}

