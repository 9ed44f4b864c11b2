"""proc.spawn records a PID that already runs the binary (issue 10: the readiness race)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from hack.localcluster import proc


def test_the_recorded_pid_runs_the_binary_as_soon_as_spawn_returns(tmp_path: Path) -> None:
    # `setsid sleep 30 &` in bash: $! runs bash for a moment. spawn must never show that.
    for _ in range(20):
        pid = proc.spawn(tmp_path, "sleeper", tmp_path / "log", ["sleep", "30"])
        try:
            assert proc.exe_of(pid) == os.path.realpath(shutil.which("sleep") or "")
            assert proc.alive(tmp_path, "sleeper") == pid
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_a_dead_daemon_is_not_alive(tmp_path: Path) -> None:
    pid = proc.spawn(tmp_path, "quick", tmp_path / "log", ["sh", "-c", "echo hi; exit 3"])
    deadline = time.monotonic() + 10
    while proc.state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.alive(tmp_path, "quick") is None
    os.waitpid(pid, 0)
    assert (tmp_path / "log").read_text() == "hi\n"


def test_a_recycled_pid_is_not_the_daemon(tmp_path: Path) -> None:
    pid = proc.spawn(tmp_path, "sleeper", tmp_path / "log", ["sleep", "30"])
    try:
        (tmp_path / "sleeper.start").write_text("1\n")  # as if another process had this PID
        assert proc.alive(tmp_path, "sleeper") is None
        (tmp_path / "sleeper.start").write_text(f"{proc.start_time(pid)}\n")
        (tmp_path / "sleeper.exe").write_text("/usr/bin/other\n")
        assert proc.alive(tmp_path, "sleeper") is None
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_a_binary_that_cannot_be_executed_fails_spawn_itself(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        proc.spawn(tmp_path, "nope", tmp_path / "log", [str(tmp_path / "missing")])
    assert not (tmp_path / "nope.pid").exists()
    assert proc.main(["spawn", str(tmp_path), "nope", str(tmp_path / "log"), "--", "no-such-binary-x"]) == 1


def test_the_lock_descriptors_of_the_caller_are_not_inherited(tmp_path: Path) -> None:
    lock = os.open(tmp_path / "lockfile", os.O_CREAT | os.O_RDWR)
    os.set_inheritable(lock, True)
    try:
        pid = proc.spawn(tmp_path, "sleeper", tmp_path / "log", ["sleep", "30"])
        try:
            fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            assert str(tmp_path / "lockfile") not in fds
            assert os.getsid(pid) == pid  # its own session
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    finally:
        os.close(lock)


def test_a_daemon_of_a_simulated_node_runs_in_that_node_netns(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root (CI runs unit tests as root)")
    import subprocess
    ns = f"lc-unit-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        pid = proc.spawn(tmp_path, "sleeper", tmp_path / "log", ["sleep", "30"], netns=f"/run/netns/{ns}")
        try:
            assert proc.exe_of(pid) == os.path.realpath(shutil.which("sleep") or "")
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
            assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
