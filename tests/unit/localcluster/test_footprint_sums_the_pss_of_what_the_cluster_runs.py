"""footprint: the README's memory numbers come from the PSS of the daemons `up` recorded (and
only those still running the binary it started) plus the shims and pods."""

from __future__ import annotations

import os
from pathlib import Path

from hack.localcluster import footprint, proc


def test_a_recorded_daemon_is_counted_with_its_pss_and_a_dead_one_is_not(tmp_path: Path) -> None:
    run = tmp_path / "run"
    pid = proc.spawn(run, "sleeper", tmp_path / "log", ["sleep", "30"])
    (run / "stale.pid").write_text("999999999\n")  # a daemon that is gone
    try:
        assert footprint.daemons(run) == {pid}
        assert footprint.pss_kib(pid) > 0
        assert footprint.pss_kib(999999999) == 0
        assert pid not in footprint.shims_and_pods(tmp_path)  # neither a shim nor in a pod's cgroup
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert footprint.daemons(run) == set()
