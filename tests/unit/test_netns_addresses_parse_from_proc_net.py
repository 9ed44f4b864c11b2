"""A netns's own addresses, from the fib_trie and if_inet6 files of its
/proc/<pid>/net: local IPv4 and global IPv6, never loopback or link-local."""

from __future__ import annotations

import os
import pathlib

from kubectl_bpf.agent import netns

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
     |-- 198.51.100.9
        /32 link UNICAST
     |-- 10.1.2.3
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
"""

IF_INET6 = """\
fd000000000000000000000000000002 04 40 00 82     eth0
20010db8000000000000000000000abc 05 40 00 80     eth1
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""


def _proc_net(tmp_path: pathlib.Path, *, fib_trie: str = "", if_inet6: str = "") -> str:
    proc_net = tmp_path / "net"
    proc_net.mkdir()
    if fib_trie:
        (proc_net / "fib_trie").write_text(fib_trie)
    if if_inet6:
        (proc_net / "if_inet6").write_text(if_inet6)
    return str(proc_net)


def test_local_ipv4_and_global_ipv6_addresses_are_found(tmp_path: pathlib.Path) -> None:
    assert netns.addresses_in(_proc_net(tmp_path, fib_trie=FIB_TRIE, if_inet6=IF_INET6)) == [
        "10.1.2.3", "192.0.2.2", "2001:db8::abc", "fd00::2"]


def test_loopback_broadcast_and_routes_are_not_addresses(tmp_path: pathlib.Path) -> None:
    found = netns.addresses_in(_proc_net(tmp_path, fib_trie=FIB_TRIE))
    for absent in ("127.0.0.1", "127.0.0.0", "192.0.2.255", "192.0.2.0", "0.0.0.0", "198.51.100.9"):
        assert absent not in found


def test_link_local_and_loopback_ipv6_are_left_out(tmp_path: pathlib.Path) -> None:
    found = netns.addresses_in(_proc_net(tmp_path, if_inet6=IF_INET6))
    assert found == ["2001:db8::abc", "fd00::2"]


def test_a_netns_without_address_files_has_no_addresses(tmp_path: pathlib.Path) -> None:
    assert netns.addresses_in(_proc_net(tmp_path)) == []
    assert netns.addresses_in(str(tmp_path / "absent")) == []


def test_ipv4_only_netns_has_only_ipv4(tmp_path: pathlib.Path) -> None:
    assert netns.addresses_in(_proc_net(tmp_path, fib_trie=FIB_TRIE)) == ["10.1.2.3", "192.0.2.2"]


def test_this_hosts_own_proc_net_parses() -> None:
    for address in netns.addresses_in("/proc/self/net"):
        assert not address.startswith("127.") and address != "::1" and not address.startswith("fe80:")


def test_netns_inode_is_the_files_inode(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "net"
    path.write_text("")
    assert netns.netns_inode(str(path)) == os.stat(path).st_ino


def test_only_nsfs_files_are_netns_files(tmp_path: pathlib.Path) -> None:
    regular = tmp_path / "net"
    regular.write_text("")
    assert netns.is_netns_file("/proc/self/ns/net")
    assert not netns.is_netns_file(str(regular))
    assert not netns.is_netns_file(str(tmp_path / "absent"))
