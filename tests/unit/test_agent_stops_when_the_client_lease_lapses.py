from __future__ import annotations

import pathlib

from kubectl_bpf.agent import lease

KEY = "kubectl-bpf/lease"


def write(path: pathlib.Path, counter: str) -> None:
    path.write_text(f'app.kubernetes.io/managed-by="kubectl-bpf"\n{KEY}="{counter}"\nother="x=y"\n')


def test_annotation_is_read_from_downward_api_format(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "annotations"
    write(path, "7")
    assert lease.read_annotation(str(path), KEY) == "7"
    assert lease.read_annotation(str(path), "other") == "x=y"
    assert lease.read_annotation(str(path), "absent") is None
    assert lease.read_annotation(str(tmp_path / "missing"), KEY) is None


def test_renewed_lease_never_expires_and_a_stale_one_does(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "annotations"
    write(path, "1")
    watcher = lease.Lease(str(path), KEY, ttl_s=10)
    assert not watcher.expired(100.0)
    for step, now in enumerate((105.0, 110.0, 115.0, 120.0), start=2):
        write(path, str(step))
        assert not watcher.expired(now)
    assert not watcher.expired(129.0)  # unchanged for 9 s
    assert watcher.expired(131.0)  # unchanged for 11 s


def test_no_lease_annotation_means_no_expiry(tmp_path: pathlib.Path) -> None:
    watcher = lease.Lease(str(tmp_path / "missing"), KEY, ttl_s=1)
    assert not any(watcher.expired(float(now)) for now in range(0, 100, 2))


def test_file_is_read_at_most_once_a_second(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "annotations"
    write(path, "1")
    watcher = lease.Lease(str(path), KEY, ttl_s=0.1)
    assert not watcher.expired(50.0)
    assert not watcher.expired(50.5)  # not re-read yet
    assert watcher.expired(51.2)
