"""The live drops table in a real 80-column terminal (tmux): no line wraps,
every row lines up with the header (IPv6 rows included), addresses keep
their port when elided; -o wide and pipes get every character instead."""

from __future__ import annotations

import io
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

from kubectl_bpf.cli import render

REPO = pathlib.Path(__file__).resolve().parents[3]

# Renders a ready record then IPv4 and IPv6 drops through the cluster view, on
# the terminal the script runs in; "END" marks that every row was written.
SCRIPT = """
import sys, time
from kubectl_bpf.gadgets.drops import cluster
from kubectl_bpf.kube import targets
pod = targets.PodTarget("shop", "web-7d9c8b5f6-x2k4q", "u", "node-1", ("10.88.0.2", "fd00:10:88::2"),
                        (), False, "Running")
view = cluster.ClusterOutput(cluster.PodIndex([targets.NodeGroup("node-1", (pod,))], {}), output=sys.argv[1],
                             aggregate=False)
view.handle("node-1", {"v": 1, "seq": 1, "type": "ready", "prog_id": 7})
base = {"type": "drop", "time": "2026-12-02T15:00:00.123456Z", "direction": "ingress", "protocol": "UDP",
        "reason": "NO_SOCKET", "location": "__udp4_lib_rcv+0x6a1", "netns": 1}
rows = [dict(base, src="10.88.0.1", sport=41234, dst="10.88.0.2", dport=9999),
        dict(base, src="fd00:10:88::1", sport=5353, dst="fd00:10:88::2", dport=9999, protocol="ICMPv6",
             icmp_type=1, icmp_code=4, reason="IP_INNOISE_CHECKSUM_FAILURE_LONG"),
        dict(base, src="10.88.0.1", sport=1, dst="10.88.0.2", dport=2)]
for seq, row in enumerate(rows, 2):
    view.handle("node-1", dict(row, seq=seq))
view.flush()
print("END", flush=True)
time.sleep(30)
"""

AGGREGATE = """
import sys, time
from kubectl_bpf.gadgets.drops import cluster
from kubectl_bpf.kube import targets
pod = targets.PodTarget("shop", "web", "u", "node-1", ("10.88.0.2",), (), False, "Running")
view = cluster.ClusterOutput(cluster.PodIndex([targets.NodeGroup("node-1", (pod,))], {}), output="table",
                             aggregate=True)
flow = {"src": "10.88.0.1", "dst": "10.88.0.2", "protocol": "UDP", "dport": 9999, "reason": "NO_SOCKET"}
for seq, count in enumerate((10, 20, 30), 1):
    view.handle("node-1", {"v": 1, "seq": seq, "type": "flows", "drops": count, "flow_count": 1,
                           "flows": [dict(flow, count=count)]})
    time.sleep(0.2)
print("END", flush=True)
time.sleep(30)
"""


def run_in_tmux(output: str, columns: int = 80, script: str = SCRIPT) -> list[str]:
    """The pane's lines, scrollback included, once the script printed END."""
    assert shutil.which("tmux"), "tmux is missing: run hack/install-dev-deps.sh"
    session = f"kbpf-{uuid.uuid4().hex[:8]}"
    command = f"cd {REPO} && {sys.executable} -c '{script}' {output} 2>/dev/null"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(columns), "-y", "40", command],
                   check=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-S", "-", "-t", session],
                                    capture_output=True,
                                    text=True, check=True).stdout
            if "END" in screen:
                return [line for line in screen.splitlines() if line.strip() and line != "END"]
            time.sleep(0.1)
        raise AssertionError(f"nothing rendered in tmux: {screen!r}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_at_80_columns_no_line_wraps_and_every_row_lines_up() -> None:
    lines = run_in_tmux("table")
    header, rows = lines[0], lines[1:]
    assert len(rows) == 3, lines
    assert all(len(line) <= 80 for line in lines), lines
    assert header.split()[:2] == ["POD", "DIR"] and "SRC" in header and "REASON" in header, header
    starts = [header.index(name) for name in ("DIR", "PROTO", "SRC", "DST", "REASON")]
    for row in rows:
        for start in starts:  # each cell begins under its header: nothing drifts after the IPv6 row
            assert row[start] != " " and row[start - 1] == " ", (header, row)
    assert rows[0].split()[3] == "10.88.0.1:41234"
    ipv6 = rows[1].split()
    assert ipv6[3].startswith("[fd00") and ipv6[3].endswith(":5353"), ipv6  # elided in the middle


def test_wide_output_shows_every_column_and_character() -> None:
    lines = run_in_tmux("wide", columns=250)
    assert lines[0].split()[:4] == ["NODE", "POD", "TIME", "DIR"]
    assert "[fd00:10:88::1]:5353" in lines[2] and "IP_INNOISE_CHECKSUM_FAILURE_LONG" in lines[2]
    assert "__udp4_lib_rcv+0x6a1" in lines[1]


def test_aggregate_tables_are_redrawn_in_place_not_appended() -> None:
    lines = run_in_tmux("table", script=AGGREGATE)
    totals = [line for line in lines if "drops," in line]
    assert totals == ["node-1: 30 drops, 1 flows"], lines  # one table on screen and in the scrollback
    assert sum(1 for line in lines if line.startswith("SRC")) == 1, lines


def test_elision_keeps_both_ends() -> None:
    assert render.elide("[fd00:10:88::1]:5353", 12) == "[fd00:~:5353"
    assert render.elide("short", 12) == "short"


def test_off_a_terminal_nothing_is_cut_and_long_values_push_only_their_line() -> None:
    out = io.StringIO()
    table = render.LiveTable([("POD", lambda r: str(r["pod"]), 8), ("DST", lambda r: str(r["dst"]), 6)], out,
                             optional=("POD",))
    for record in ({"pod": "a", "dst": "x"}, {"pod": "a-very-long-pod-name", "dst": "y"},
                   {"pod": "b", "dst": "z"}):
        table.row(record)
    lines = out.getvalue().splitlines()
    assert lines[1] == "a         x"
    assert lines[2] == "a-very-long-pod-name  y"
    assert lines[3] == "b         z"  # lined up with the header again

