"""Resolve a target on the host: PIDs, netns files or container IDs to netns
inodes, plus the target's IP addresses.

Container IDs are found by scanning ``/proc/*/cgroup`` for the ID rather than
by building cgroup paths, because path templates differ between cgroup
drivers, QoS classes and distributions (field notes §1.8).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from typing import Iterable

from kubectl_bpf.agent import errors, netns
from kubectl_bpf.protocol import spec

# "containerd://", "cri-o://", "docker://": any runtime scheme is stripped.
RUNTIME_PREFIX = re.compile(r"^[a-z0-9.+-]+://")
CONTAINER_ID = re.compile(r"^[0-9a-f]{12,64}$")


@dataclasses.dataclass(frozen=True)
class HostTarget:
    """A target in kernel terms. No netns and no IPs means the whole host."""

    netns: tuple[int, ...]
    ips: tuple[str, ...]
    pids: tuple[int, ...]
    containers: tuple[tuple[str, int], ...] = ()  # (container ID, netns inode): lets the client name pods
    # This node's netns when nodes share one kernel (agent/nodescope.py), else empty: a
    # gadget that honours it counts nothing outside them, whatever the IP.
    node_netns: tuple[int, ...] = ()

    @property
    def is_whole_host(self) -> bool:
        return not self.netns and not self.ips

    def to_record(self) -> dict[str, object]:
        return {"netns": list(self.netns), "ips": list(self.ips), "pids": len(self.pids),
                "containers": dict(self.containers), "whole_host": self.is_whole_host}


def normalize_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as exc:
        raise errors.BadInputError(f"malformed IP address {text!r}") from exc


def normalize_container_id(text: str) -> str:
    container_id = RUNTIME_PREFIX.sub("", text.strip()).lower()
    if not CONTAINER_ID.match(container_id):
        raise errors.BadInputError(
            f"malformed container ID {text!r}: expected 12-64 hex digits, optionally "
            "prefixed by a runtime scheme such as containerd://")
    return container_id


def _numeric_dirs(proc_root: str) -> Iterable[str]:
    try:
        return [entry for entry in os.listdir(proc_root) if entry.isdigit()]
    except OSError as exc:
        raise errors.TargetNotFoundError(f"cannot list {proc_root}: {exc.strerror}") from exc


def pids_of_container(container_id: str, proc_root: str) -> list[int]:
    pids = []
    for entry in _numeric_dirs(proc_root):
        try:
            with open(os.path.join(proc_root, entry, "cgroup"), encoding="utf-8") as cgroup:
                if container_id in cgroup.read():
                    pids.append(int(entry))
        except OSError:
            continue  # the process exited while we scanned
    return sorted(pids)


def _netns_of_pid(pid: int, proc_root: str) -> int:
    try:
        return netns.netns_inode(os.path.join(proc_root, str(pid), "ns", "net"))
    except FileNotFoundError as exc:
        raise errors.TargetNotFoundError(f"no process with PID {pid}") from exc
    except PermissionError as exc:
        raise errors.PrivilegeError(f"cannot read the netns of PID {pid}: need CAP_SYS_PTRACE") from exc


def resolve_target(target: spec.TargetSpec, *, proc_root: str = "/proc") -> HostTarget:
    """Netns inodes and IPs of the target. IPs given explicitly are kept;
    the non-loopback addresses of every target netns are added, so drops of
    its traffic outside the netns (host side of a veth, a router) match too."""
    ips = {normalize_ip(ip) for ip in target.ips}
    inodes: dict[int, str] = {}  # inode -> a /proc/<pid>/net to read its addresses
    netns_files: dict[int, str] = {}
    pids: list[int] = []
    containers: dict[str, int] = {}

    for pid in target.pids:
        if pid <= 0:
            raise errors.BadInputError(f"invalid PID {pid}")
        inodes.setdefault(_netns_of_pid(pid, proc_root), os.path.join(proc_root, str(pid), "net"))
        pids.append(pid)
    for container in target.container_ids:
        container_id = normalize_container_id(container)
        found = pids_of_container(container_id, proc_root)
        if not found:
            raise errors.TargetNotFoundError(f"no process of container {container_id[:12]} on this host")
        for pid in found:
            try:
                inode = _netns_of_pid(pid, proc_root)
            except errors.TargetNotFoundError:
                continue  # exited since the scan
            inodes.setdefault(inode, os.path.join(proc_root, str(pid), "net"))
            containers.setdefault(container_id, inode)
        pids.extend(found)
    for path in target.netns_paths:
        if not os.path.exists(path):
            raise errors.TargetNotFoundError(f"no network namespace at {path}")
        if not netns.is_netns_file(path):
            raise errors.BadInputError(f"{path} is not a network namespace file")
        netns_files.setdefault(netns.netns_inode(path), path)

    for proc_net in inodes.values():
        ips.update(netns.addresses_in(proc_net))
    for inode, path in netns_files.items():
        if inode not in inodes:
            ips.update(netns.addresses_of_netns_file(path) or ())
        inodes.setdefault(inode, path)
    return HostTarget(netns=tuple(sorted(inodes)), ips=tuple(sorted(ips)), pids=tuple(sorted(pids)),
                      containers=tuple(sorted(containers.items())))
