"""Network namespaces seen from the host: their inodes and their addresses.

An inode identifies a netns kernel-wide, which is what the BPF filter
compares against. Addresses are read from the netns itself so a drop on the
host side of a veth (where the netns does not match) is still attributed to
the target by IP.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import json
import os
from typing import Optional

CLONE_NEWNET = 0x40000000


def netns_inode(path: str) -> int:
    """Inode of the netns file at path; OSError if it is not one."""
    return os.stat(path).st_ino


def is_netns_file(path: str) -> bool:
    """True for nsfs files (/proc/PID/ns/net, /run/netns/NAME); they share
    the nsfs device with our own netns file."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def _local_ipv4(fib_trie: str) -> set[str]:
    """Local addresses from /proc/net/fib_trie: a leaf line followed by
    ``/32 host LOCAL``."""
    found, leaf = set(), None
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|--"):
            leaf = text[3:].strip()
        elif leaf and text.startswith("/32 host LOCAL"):
            found.add(leaf)
    return found


def _global_ipv6(if_inet6: str) -> set[str]:
    found = set()
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) >= 4 and int(fields[3], 16) == 0:  # scope global only
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def addresses_in(proc_net: str) -> list[str]:
    """Non-loopback addresses of the netns behind a /proc/<pid>/net folder.
    Loopback and link-local are left out: every netns has the same ones."""
    found: set[str] = set()
    try:
        with open(os.path.join(proc_net, "fib_trie"), encoding="ascii") as fib:
            found |= {a for a in _local_ipv4(fib.read()) if not a.startswith("127.")}
    except OSError:
        pass
    try:
        with open(os.path.join(proc_net, "if_inet6"), encoding="ascii") as inet6:
            found |= _global_ipv6(inet6.read())
    except OSError:
        pass
    return sorted(found)


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def addresses_of_netns_file(path: str) -> Optional[list[str]]:
    """Addresses of a netns given only its file (no process inside): a forked
    child enters it and reads its own /proc/self/net. None if that fails."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read_end)
            fd = os.open(path, os.O_RDONLY)
            _setns(fd)
            os.write(write_end, json.dumps(addresses_in("/proc/self/net")).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(child, 0)
    if status != 0:
        return None
    addresses: list[str] = json.loads(data)
    return addresses
