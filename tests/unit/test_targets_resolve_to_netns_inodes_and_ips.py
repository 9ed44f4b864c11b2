"""Target resolution against a fake /proc: container IDs in every cgroup
path style, PIDs and netns files become netns inodes plus the target's IPs.

In the fake tree, ``<pid>/ns/net`` is a regular file whose inode stands for
the netns inode; processes sharing a netns share the file (a hard link).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import pytest

from kubectl_bpf.agent import errors, netns, targets
from kubectl_bpf.protocol import exitcodes, spec

POD_UID = "5f0c9a51-2b7e-4c7f-9d84-0c2d5e6f7a8b"
CGROUPFS_ID = "a" * 64
SYSTEMD_ID = "0123456789abcdef" * 4
DOCKER_ID = "d0c4e7" + "1" * 58
CRIO_ID = "c71d" + "2" * 60
V1_ID = "f" * 64

CGROUPS = {
    # cgroupfs driver, cgroup v2
    100: f"0::/kubepods/besteffort/pod{POD_UID}/{CGROUPFS_ID}\n",
    101: f"0::/kubepods/besteffort/pod{POD_UID}/{CGROUPFS_ID}\n",  # same container, same netns
    # systemd driver with containerd
    200: ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
          f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{SYSTEMD_ID}.scope\n"),
    # docker
    300: f"12:memory:/docker/{DOCKER_ID}\n11:cpu,cpuacct:/docker/{DOCKER_ID}\n0::/\n",
    # cri-o with systemd
    400: f"0::/kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice/crio-{CRIO_ID}.scope\n",
    # cgroup v1 hierarchies plus the unified one (field notes §4)
    500: (f"12:pids:/kubepods/burstable/pod{POD_UID}/{V1_ID}\n"
          f"4:memory:/kubepods/burstable/pod{POD_UID}/{V1_ID}\n1:name=systemd:/kubepods/burstable/"
          f"pod{POD_UID}/{V1_ID}\n0::/\n"),
    # a host process
    1: "0::/init.scope\n",
}

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
     +-- {net}.0/24 2 0 2
        +-- {net}.0/30 2 0 2
           |-- {net}.0
              /24 link UNICAST
           |-- {net}.{host}
              /32 host LOCAL
        |-- {net}.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- {net}.{host}
        /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
"""

IF_INET6 = """\
fd00000000000000000000000000{host:04x} 04 40 00 82     eth0
fe8000000000000000fc00fffe00{host:04x} 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""


@dataclasses.dataclass
class FakeProc:
    root: pathlib.Path
    inodes: dict[int, int]  # pid -> inode of its ns/net file

    def write_net(self, pid: int, *, net: str, host: int) -> None:
        proc_net = self.root / str(pid) / "net"
        proc_net.mkdir(exist_ok=True)
        (proc_net / "fib_trie").write_text(FIB_TRIE.format(net=net, host=host))
        (proc_net / "if_inet6").write_text(IF_INET6.format(host=host))


@pytest.fixture
def fake_proc(tmp_path: pathlib.Path) -> FakeProc:
    root = tmp_path / "proc"
    root.mkdir()
    inodes: dict[int, int] = {}
    for pid, cgroup in CGROUPS.items():
        (root / str(pid) / "ns").mkdir(parents=True)
        (root / str(pid) / "cgroup").write_text(cgroup)
        net = root / str(pid) / "ns" / "net"
        if pid == 101:
            os.link(root / "100" / "ns" / "net", net)
        else:
            net.write_text("")
        inodes[pid] = os.stat(net).st_ino
    for name in ("self", "sys", "net", "1a"):  # not processes
        (root / name).mkdir()
        (root / name / "cgroup").write_text(f"0::/kubepods/{CGROUPFS_ID}\n")
    fake = FakeProc(root, inodes)
    fake.write_net(100, net="10.244.0", host=5)
    fake.write_net(200, net="10.244.1", host=7)
    return fake


def _resolve(fake: FakeProc, **target: tuple[object, ...]) -> targets.HostTarget:
    return targets.resolve_target(spec.TargetSpec(**target), proc_root=str(fake.root))  # type: ignore[arg-type]


# -- container IDs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("container_id", "pids"), [
    (CGROUPFS_ID, (100, 101)), (SYSTEMD_ID, (200,)), (DOCKER_ID, (300,)), (CRIO_ID, (400,)), (V1_ID, (500,)),
], ids=["cgroupfs", "systemd-containerd", "docker", "cri-o", "cgroup-v1"])
def test_container_is_found_in_every_cgroup_path_style(fake_proc: FakeProc, container_id: str,
                                                       pids: tuple[int, ...]) -> None:
    target = _resolve(fake_proc, container_ids=(container_id,))
    assert target.pids == pids
    assert target.netns == (fake_proc.inodes[pids[0]],)


def test_non_process_entries_of_proc_are_never_scanned(fake_proc: FakeProc) -> None:
    assert targets.pids_of_container(CGROUPFS_ID, str(fake_proc.root)) == [100, 101]


def test_processes_sharing_a_netns_give_one_inode(fake_proc: FakeProc) -> None:
    assert fake_proc.inodes[100] == fake_proc.inodes[101]
    assert _resolve(fake_proc, container_ids=(CGROUPFS_ID,)).netns == (fake_proc.inodes[100],)


@pytest.mark.parametrize("prefix", ["containerd://", "cri-o://", "docker://", "some.runtime+v2://", ""])
def test_any_runtime_prefix_is_stripped(fake_proc: FakeProc, prefix: str) -> None:
    assert _resolve(fake_proc, container_ids=(prefix + SYSTEMD_ID,)).pids == (200,)


def test_container_id_is_matched_case_insensitively_and_trimmed(fake_proc: FakeProc) -> None:
    assert _resolve(fake_proc, container_ids=(f"  containerd://{SYSTEMD_ID.upper()}\n",)).pids == (200,)


def test_short_container_id_finds_the_container(fake_proc: FakeProc) -> None:
    assert _resolve(fake_proc, container_ids=(SYSTEMD_ID[:12],)).pids == (200,)


def test_container_target_gets_the_netns_addresses(fake_proc: FakeProc) -> None:
    target = _resolve(fake_proc, container_ids=(CGROUPFS_ID,))
    assert target.ips == ("10.244.0.5", "fd00::5")


def test_containers_in_other_netns_are_combined(fake_proc: FakeProc) -> None:
    target = _resolve(fake_proc, container_ids=(CGROUPFS_ID, SYSTEMD_ID))
    assert target.netns == tuple(sorted({fake_proc.inodes[100], fake_proc.inodes[200]}))
    assert target.pids == (100, 101, 200)
    assert target.ips == ("10.244.0.5", "10.244.1.7", "fd00::5", "fd00::7")


def test_a_process_that_exited_during_the_scan_is_skipped(fake_proc: FakeProc) -> None:
    os.unlink(fake_proc.root / "100" / "ns" / "net")
    target = _resolve(fake_proc, container_ids=(CGROUPFS_ID,))
    assert target.netns == (fake_proc.inodes[101],)


def test_unknown_container_is_not_found(fake_proc: FakeProc) -> None:
    with pytest.raises(errors.TargetNotFoundError) as caught:
        _resolve(fake_proc, container_ids=("e" * 64,))
    assert caught.value.exit_code == exitcodes.NOT_FOUND
    assert "eeeeeeeeeeee" in str(caught.value)


@pytest.mark.parametrize("bad", ["", "xyz", "abc", "a" * 11, "a" * 65, "containerd://", "g" * 64,
                                 "containerd://" + "a" * 63 + "-"])
def test_malformed_container_id_is_bad_input(fake_proc: FakeProc, bad: str) -> None:
    with pytest.raises(errors.BadInputError) as caught:
        _resolve(fake_proc, container_ids=(bad,))
    assert caught.value.exit_code == exitcodes.USAGE


def test_normalized_container_id_has_no_prefix_and_is_lowercase() -> None:
    assert targets.normalize_container_id("cri-o://" + "ABCDEF" * 2) == "abcdef" * 2


def test_container_lookup_without_a_proc_root_is_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.TargetNotFoundError):
        targets.resolve_target(spec.TargetSpec(container_ids=(CGROUPFS_ID,)),
                               proc_root=str(tmp_path / "absent"))


# -- PIDs ------------------------------------------------------------------------------------------


def test_pid_resolves_to_its_netns_inode_and_addresses(fake_proc: FakeProc) -> None:
    target = _resolve(fake_proc, pids=(200,))
    assert target.netns == (fake_proc.inodes[200],)
    assert target.ips == ("10.244.1.7", "fd00::7")
    assert target.pids == (200,)
    assert not target.is_whole_host


def test_pid_without_addresses_still_resolves(fake_proc: FakeProc) -> None:
    target = _resolve(fake_proc, pids=(300,))
    assert target.netns == (fake_proc.inodes[300],)
    assert target.ips == ()


def test_unknown_pid_is_not_found(fake_proc: FakeProc) -> None:
    with pytest.raises(errors.TargetNotFoundError) as caught:
        _resolve(fake_proc, pids=(99999,))
    assert "99999" in str(caught.value)


@pytest.mark.parametrize("pid", [0, -1])
def test_non_positive_pid_is_bad_input(fake_proc: FakeProc, pid: int) -> None:
    with pytest.raises(errors.BadInputError):
        _resolve(fake_proc, pids=(pid,))


def test_unreadable_netns_is_a_privilege_error(fake_proc: FakeProc, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str) -> int:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(netns, "netns_inode", refuse)
    with pytest.raises(errors.PrivilegeError) as caught:
        _resolve(fake_proc, pids=(100,))
    assert caught.value.exit_code == exitcodes.PERMISSION


# -- IPs, netns files and the whole host -----------------------------------------------------------


def test_explicit_ips_are_normalized_and_kept(fake_proc: FakeProc) -> None:
    target = _resolve(fake_proc, ips=(" 192.0.2.1 ", "FD00:0:0::0001", "192.0.2.1"))
    assert target.ips == ("192.0.2.1", "fd00::1")
    assert target.netns == ()
    assert not target.is_whole_host


def test_explicit_ips_are_merged_with_the_netns_addresses(fake_proc: FakeProc) -> None:
    assert _resolve(fake_proc, pids=(100,), ips=("192.0.2.1",)).ips == ("10.244.0.5", "192.0.2.1", "fd00::5")


@pytest.mark.parametrize("bad", ["", "10.0.0", "10.0.0.256", "fd00:::1", "10.0.0.1/24", "example.com"])
def test_malformed_ip_is_bad_input(bad: str) -> None:
    with pytest.raises(errors.BadInputError) as caught:
        targets.normalize_ip(bad)
    assert caught.value.exit_code == exitcodes.USAGE
    assert repr(bad) in str(caught.value)


def test_malformed_ip_in_a_target_is_bad_input(fake_proc: FakeProc) -> None:
    with pytest.raises(errors.BadInputError):
        _resolve(fake_proc, ips=("10.0.0.300",))


def test_missing_netns_path_is_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.TargetNotFoundError):
        targets.resolve_target(spec.TargetSpec(netns_paths=(str(tmp_path / "absent"),)))


def test_regular_file_as_netns_path_is_bad_input(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "not-a-netns"
    path.write_text("")
    with pytest.raises(errors.BadInputError) as caught:
        targets.resolve_target(spec.TargetSpec(netns_paths=(str(path),)))
    assert str(path) in str(caught.value)


def test_a_real_netns_file_resolves_to_its_inode() -> None:
    target = targets.resolve_target(spec.TargetSpec(netns_paths=("/proc/self/ns/net",)))
    assert target.netns == (os.stat("/proc/self/ns/net").st_ino,)


def test_empty_target_is_the_whole_host(fake_proc: FakeProc) -> None:
    target = _resolve(fake_proc)
    assert target.is_whole_host
    assert target.to_record() == {"netns": [], "ips": [], "pids": 0, "containers": {},
                                   "whole_host": True}


def test_target_record_lists_inodes_and_ips_and_counts_pids(fake_proc: FakeProc) -> None:
    record = _resolve(fake_proc, container_ids=(CGROUPFS_ID,)).to_record()
    assert record == {"netns": [fake_proc.inodes[100]], "ips": ["10.244.0.5", "fd00::5"], "pids": 2,
                      "containers": {CGROUPFS_ID: fake_proc.inodes[100]}, "whole_host": False}
