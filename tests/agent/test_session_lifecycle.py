"""Sessions stop on signals and deadlines, always detach, always summarize."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.agent.conftest import TARGET_V4

pytestmark = pytest.mark.agent


def program_exists(prog_id: int) -> bool:
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)],
                          capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_detaches_and_still_ends_with_summary(pair, trace, signum):
    client, target = pair
    tracer = trace("--netns", target.path)
    prog_id = tracer.of_type("ready")[0]["prog_id"]
    assert program_exists(prog_id)
    client.traffic("udp", TARGET_V4, "7301", "1")
    tracer.settle()
    assert tracer.stop(signum) == 0
    assert [r["type"] for r in tracer.records[-2:]] == ["summary", "end"]
    assert tracer.summary["drops"] >= 1
    assert tracer.summary["stopped_by"] == signal.Signals(signum).name
    assert not program_exists(prog_id)


def test_duration_ends_the_session_by_itself(pair, trace):
    _, target = pair
    tracer = trace("--netns", target.path, "--duration", "0.5")
    assert tracer.finish(timeout=5) == 0
    # Not before the deadline; the upper bound only shows the session did not run on to
    # another limit (under qemu's emulation ending takes seconds, so no tighter bound).
    assert 0.5 <= tracer.summary["duration_s"] < 5.0
    assert tracer.summary["stopped_by"] == "duration"


def test_sequence_numbers_are_gapless_from_one(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path, "--interval", "0.1")
    client.traffic("udp", TARGET_V4, "7302", "50")
    tracer.settle()
    tracer.stop()
    assert [r["seq"] for r in tracer.records] == list(range(1, len(tracer.records) + 1))
    assert [r["type"] for r in tracer.records[:2]] == ["preflight", "ready"]
    assert tracer.of_type("stats"), "periodic stats records"


def test_without_capabilities_fails_with_one_line_and_exit_4():
    result = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
         sys.executable, "-m", "kubectl_bpf", "drops", "--local", "--duration", "1"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CAP_BPF" in lines[0], result.stderr


def test_table_output_has_header_rows_and_summary(pair):
    client, target = pair
    proc = subprocess.Popen([sys.executable, "-m", "kubectl_bpf", "drops", "--local", "--netns", target.path,
                             "--duration", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("Tracing drops of netns")  # printed once ready
        client.traffic("udp", TARGET_V4, "7303", "2")
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "DIR", "PROTO", "SRC", "DST", "REASON", "LOCATION"]
    rows = [line for line in lines if f"{TARGET_V4}:7303" in line]
    assert len(rows) == 2 and all("NO_SOCKET" in row and "ingress" in row for row in rows)
    assert any(line.startswith("REASON") for line in lines)
    assert proc.returncode == 0, err
