"""The agent bounds its own life: a hard maximum and a client lease, so a
tracer whose client died does not trace forever."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import pytest

from kubectl_bpf.protocol import spec

pytestmark = pytest.mark.agent


def run_agent(run_spec: spec.RunSpec, timeout: float) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "kubectl_bpf.agent", "--spec", run_spec.to_json()],
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_hard_maximum_stops_a_run_without_duration():
    started = time.monotonic()
    records = run_agent(spec.RunSpec(gadget="drops", max_duration_s=1.0, target=spec.TargetSpec(
        ips=("192.0.2.1",))), timeout=20)
    assert time.monotonic() - started < 10
    summary = next(r for r in records if r["type"] == "summary")
    assert summary["stopped_by"] == "max-duration"
    assert records[-1]["type"] == "end"


def test_lapsed_lease_stops_the_agent(tmp_path: pathlib.Path):
    annotations = tmp_path / "annotations"
    annotations.write_text('kubectl-bpf/lease="1"\n')
    run_spec = spec.RunSpec(gadget="drops", lease_file=str(annotations), lease_ttl_s=1.5,
                            max_duration_s=30, target=spec.TargetSpec(ips=("192.0.2.1",)))
    proc = subprocess.Popen([sys.executable, "-m", "kubectl_bpf.agent", "--spec", run_spec.to_json()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for counter in range(2, 6):  # a live client renews: the agent keeps going
            time.sleep(0.6)
            annotations.write_text(f'kubectl-bpf/lease="{counter}"\n')
        assert proc.poll() is None
        started = time.monotonic()
        out, err = proc.communicate(timeout=15)  # the client "dies": no more renewals
        assert time.monotonic() - started < 6
    finally:
        proc.kill()
    records = [json.loads(line) for line in out.splitlines()]
    summary = next(r for r in records if r["type"] == "summary")
    assert summary["stopped_by"] == "lease-expired", err
