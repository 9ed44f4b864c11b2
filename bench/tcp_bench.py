#!/usr/bin/env python3
"""Benchmark `kubectl-bpf tcp` against a bpftrace program on a flood of refused connections.

Issue 11, "Bench". One run, side by side, on the same flood (bench/connflood.c: threads that
connect() to a closed port of a peer namespace, each attempt refused by a RST):

* kernel ns per hook run and per tcp event (kernel BPF stats, kernel.bpf_stats_enabled=1) for
  our programs with the flood as the target, with the flood filtered out (the target is an
  idle namespace), with the evidence (drops) program on, and for a bpftrace program printing
  each `tracepoint:sock:inet_sock_set_state` of the flood's netns (matching) or of the idle one;
* connections/s the flood reached under each tracer, and whether ours kept up: every refused
  connection is one REFUSED line (seen == connections), lost == 0, the accounting exact
  (seen == events + lost + suppressed, unaccounted == 0); bpftrace's lines and lost events.

Everything the bench creates (namespaces, a veth pair, a temp dir) is undone on exit, and
kernel.bpf_stats_enabled is put back. Run as root from the repository root:

    python3 bench/tcp_bench.py [--seconds 5] [--rounds 2] [--json out.json]

Ours runs from this source tree (PYTHONPATH), built with `make bpf`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Optional

import drops_bench
from drops_bench import log, median, prog_stats, run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FLOOD_SOURCE = os.path.join(HERE, "connflood.c")
PREFIX = "kbpf-tcpbench-"
CLIENT_IP, SERVER_IP, CLOSED_PORT = "10.239.1.1", "10.239.1.2", 81
STATS_SYSCTL = drops_bench.STATS_SYSCTL
# The baseline: what bpftrace users write for "show me TCP state changes" (the issue's
# `tracepoint:sock:inet_sock_set_state` printf), filtered to one netns as ours is.
BPFTRACE_SCRIPT = r"""
tracepoint:sock:inet_sock_set_state
/ args->protocol == 6 /
{
  $sk = (struct sock *)args->skaddr;
  if ($sk->__sk_common.skc_net.net->ns.inum == NETNS) {
    printf("tcp %s %d %d %s %s %d %d\n", strftime("%H:%M:%S.%f", nsecs), args->oldstate,
      args->newstate, ntop(args->saddr), ntop(args->daddr), args->sport, args->dport);
  }
}
"""
KINDS = ("untraced", "ours", "ours_evidence", "ours_filtered", "bpftrace", "bpftrace_filtered")
LABELS = {"untraced": "(0) no tracer", "ours": "(a) ours, target = flood netns, --no-evidence",
          "ours_evidence": "(a') ours, target = flood netns, with evidence (drops program)",
          "ours_filtered": "(b) ours, flood filtered out (target: idle netns)",
          "bpftrace": "(c) bpftrace printf, flood netns", "bpftrace_filtered": "(d) bpftrace, idle netns"}


class Lab:
    """Client and server namespaces joined by a veth, an idle namespace, stats on."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix=PREFIX)
        self.prefix = f"{PREFIX}{os.getpid()}"
        self.client, self.server, self.idle = (f"{self.prefix}-{r}" for r in ("c", "s", "i"))
        self.namespaces: list[str] = []
        self.children: list[subprocess.Popen[bytes]] = []
        self.stats_before: Optional[str] = None
        self.flood_bin = os.path.join(self.tmp, "connflood")

    def setup(self) -> None:
        run(["gcc", "-O2", "-Wall", "-pthread", "-o", self.flood_bin, FLOOD_SOURCE])
        for name in (self.client, self.server, self.idle):
            run(["ip", "netns", "add", name])
            self.namespaces.append(name)
            run(["ip", "-n", name, "link", "set", "lo", "up"])
        veth = f"kt{os.getpid() % 100000}"
        run(["ip", "link", "add", f"{veth}a", "netns", self.client, "type", "veth", "peer", "name",
             f"{veth}b", "netns", self.server])
        for name, dev, ip in ((self.client, f"{veth}a", CLIENT_IP), (self.server, f"{veth}b", SERVER_IP)):
            run(["ip", "-n", name, "addr", "add", f"{ip}/24", "dev", dev])
            run(["ip", "-n", name, "link", "set", dev, "up"])
        with open(STATS_SYSCTL) as f:
            self.stats_before = f.read().strip()

    def enable_stats(self) -> None:
        with open(STATS_SYSCTL, "w") as f:
            f.write("1")

    def path(self, name: str) -> str:
        return f"/run/netns/{name}"

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, **kwargs)
        self.children.append(proc)
        return proc

    def flood(self, threads: int, seconds: float, rate: int = 0) -> dict[str, Any]:
        out = run(["ip", "netns", "exec", self.client, self.flood_bin, SERVER_IP, str(CLOSED_PORT),
                   str(threads), str(seconds), str(rate)])
        result: dict[str, Any] = json.loads(out)
        result["rate"] = result["connections"] / result["seconds"]
        return result

    def close(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        if self.stats_before is not None:
            with open(STATS_SYSCTL, "w") as f:
                f.write(self.stats_before)
        for name in self.namespaces:
            run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Tracer:
    """A tracer process whose event lines are counted (and kept, for ours' JSON records)."""

    def __init__(self, lab: Lab, argv: list[str], *, ready: bytes, event: bytes, keep: bool) -> None:
        env = {**os.environ, "PYTHONPATH": REPO}
        self.proc = lab.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.lines: list[bytes] = []
        self.count = 0
        self._keep = keep
        self._ready = threading.Event()
        self._marker = ready
        self._event = event
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"{argv[0]}: not ready in 30 s: {b''.join(self.lines[-5:])!r}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(self._event):
                self.count += 1
            if self._keep or not self._ready.is_set() or b"Lost" in line or b"ERROR" in line:
                self.lines.append(line)
            if self._marker in line:
                self._ready.set()

    def stop(self) -> float:
        """SIGINT, then the time until it exited: bpftrace drains its backlog first."""
        started = time.monotonic()
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return round(time.monotonic() - started, 2)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith(b"{")]


def programs() -> dict[int, tuple[str, str]]:
    return {int(p["id"]): (p.get("type", ""), p.get("name", ""))
            for p in json.loads(run(["bpftool", "prog", "show", "-j"]))}


def ours_argv(target: str, *, evidence: bool) -> list[str]:
    return [sys.executable, "-m", "kubectl_bpf", "tcp", "--local", "--netns", target, "-o", "json",
            "--interval", "1", *([] if evidence else ["--no-evidence"])]


def bpftrace_argv(lab: Lab, netns: str) -> list[str]:
    script = os.path.join(lab.tmp, f"tcp-{netns[-1]}.bt")
    with open(script, "w") as f:
        f.write(BPFTRACE_SCRIPT.replace("NETNS", str(os.stat(lab.path(netns)).st_ino)))
    # The classic tracepoint needs tracefs: mounted in a private mount namespace, for bpftrace alone.
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount -t tracefs nodev /sys/kernel/tracing && exec bpftrace "$0"', script]


def measure(lab: Lab, kind: str, threads: int, seconds: float, rate: int = 0) -> dict[str, Any]:
    """One flood under one tracer: rates, BPF stats deltas and (ours) the summary."""
    before = programs()
    tracer: Optional[Tracer] = None
    if kind.startswith("ours"):
        target = lab.path(lab.idle if kind == "ours_filtered" else lab.client)
        tracer = Tracer(lab, ours_argv(target, evidence=kind == "ours_evidence"), ready=b'"type":"ready"',
                        event=b"{", keep=True)
    elif kind.startswith("bpftrace"):
        netns = lab.idle if kind == "bpftrace_filtered" else lab.client
        tracer = Tracer(lab, bpftrace_argv(lab, netns), ready=b"Attaching", event=b"tcp ",
                        keep=False)
        time.sleep(1.0)  # "Attaching" comes just before the attach itself
    # Only the tracer's own programs: other processes on the host load and unload theirs.
    mine = (lambda info: info[1].startswith("handle_")) if kind.startswith("ours") else (
        lambda info: info[0] == "tracepoint")
    new = {pid: info for pid, info in programs().items() if pid not in before and mine(info)}
    lab.enable_stats()
    stats_before = {pid: prog_stats(pid) for pid in new}
    flood = lab.flood(threads, seconds, rate)
    stats_after = {pid: prog_stats(pid) for pid in new}
    row: dict[str, Any] = {"kind": kind, "paced": rate, "connections": flood["connections"],
                           "refused": flood["refused"], "rate": round(flood["rate"])}
    tcp_ns = tcp_runs = drops_ns = drops_runs = 0
    for pid, (_type, name) in new.items():
        ns = stats_after[pid][0] - stats_before[pid][0]
        runs = stats_after[pid][1] - stats_before[pid][1]
        if name.startswith("handle_kfree"):
            drops_ns, drops_runs = drops_ns + ns, drops_runs + runs
        else:
            tcp_ns, tcp_runs = tcp_ns + ns, tcp_runs + runs
    row.update(tcp_ns=tcp_ns, tcp_runs=tcp_runs, drops_ns=drops_ns, drops_runs=drops_runs,
               ns_per_run=round(tcp_ns / tcp_runs, 1) if tcp_runs else None,
               ns_per_connection=round((tcp_ns + drops_ns) / flood["connections"], 1) if tcp_runs else None)
    if tracer is None:
        return row
    time.sleep(1.5)  # let the reader drain
    row["stop_s"] = tracer.stop()
    if kind.startswith("ours"):
        records = tracer.records()
        summary = next(r for r in records if r["type"] == "summary")
        refused_lines = sum(1 for r in records if r["type"] == "tcp" and r["event"] == "REFUSED")
        peer = next((p for p in summary["peers"] if p["port"] == CLOSED_PORT), {})
        row.update(seen=summary["seen"], events=summary["events"], lost=summary["lost"],
                   suppressed=summary["suppressed"], unaccounted=summary["unaccounted"],
                   refused_lines=refused_lines, peer_refused=peer.get("refused", 0),
                   exact=summary["seen"] == summary["events"] + summary["lost"] + summary["suppressed"]
                   and summary["unaccounted"] == 0)
        if summary["seen"]:
            row["ns_per_event"] = round((tcp_ns + drops_ns) / summary["seen"], 1)
    else:
        row["lines"] = tracer.count
        if tracer.count:
            row["ns_per_event"] = round(tcp_ns / tracer.count, 1)
        row["lost"] = sum(int(word) for line in tracer.lines for word in line.split()[1:2]
                          if line.startswith(b"Lost") and word.isdigit())
    return row


def report(results: dict[str, Any]) -> list[str]:
    by_kind = {kind: [r for r in results["rounds"] if r["kind"] == kind] for kind in KINDS}

    def med(kind: str, key: str) -> float:
        return median([r.get(key) for r in by_kind[kind]])

    lines = [f"kubectl-bpf tcp benchmark - {results['date']}",
             f"machine: {results['machine']}", f"flood: {results['threads']} connflood threads, "
             f"{results['seconds']} s per round, {len(by_kind['ours'])} rounds (medians)", "",
             f"{'':62} {'conn/s':>7} {'ns/run':>7} {'ns/event':>8} {'ns/conn':>8} {'lost':>6} exact"]
    for kind in KINDS:
        lost = med(kind, "lost")
        exact = {True: "yes", False: "NO"}.get(all(r.get("exact") for r in by_kind[kind])) \
            if kind.startswith("ours") and kind != "ours_filtered" else ""
        lines.append(f"{LABELS[kind]:62} {med(kind, 'rate'):7.0f} {med(kind, 'ns_per_run'):7.1f} "
                     f"{med(kind, 'ns_per_event'):8.1f} {med(kind, 'ns_per_connection'):8.1f} "
                     f"{lost:6.0f} {exact}")
    ours, bpftrace = med("ours", "ns_per_connection"), med("bpftrace", "ns_per_connection")
    lines += ["", f"kernel time per refused connection, ours (6 hooks, one REFUSED line) vs bpftrace "
              f"(2 printf lines): {ours / bpftrace:.3f}x",
              f"filtered out: ours {med('ours_filtered', 'ns_per_run'):.1f} ns, "
              f"bpftrace {med('bpftrace_filtered', 'ns_per_run'):.1f} ns per run"]
    for row in by_kind["ours"] + by_kind["ours_evidence"]:
        lines.append(f"{row['kind']}: {row['connections']} connections, seen {row['seen']}, "
                     f"REFUSED lines {row['refused_lines']}, peer refused {row['peer_refused']}, "
                     f"lost {row['lost']}, unaccounted {row['unaccounted']}")
    for row in by_kind["bpftrace"]:
        lines.append(f"bpftrace: {row['connections']} connections, {row['lines']} lines "
                     f"(2 per connection expected), lost {row['lost']}")
    for kind in ("ours", "ours_evidence"):
        lines += ["", f"keep-up, {LABELS[kind]}, paced flood: asked -> reached conn/s, seen, lost, exact"]
        kept = [0]
        for row in (r for r in results.get("paced", []) if r["kind"] == kind):
            ok = row["lost"] == 0 and row["seen"] == row["connections"] and row["exact"]
            kept.append(row["rate"] if ok else 0)
            lines.append(f"  {row['paced']:>6} -> {row['rate']:>6}: seen {row['seen']}/{row['connections']}, "
                         f"lost {row['lost']}, exact {row['exact']}{'  KEPT UP' if ok else ''}")
        lines.append(f"highest rate kept up with (no loss, every connection one line): {max(kept)} conn/s")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="flood length per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="connflood threads")
    parser.add_argument("--rates", default="10000,20000,30000,40000",
                        help="paced connections/s for the keep-up rounds (ours, without and with evidence)")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("tcp_bench: run as root")
    lab = Lab()
    try:
        lab.setup()
        rounds = []
        for number in range(args.rounds):
            for kind in KINDS:  # interleaved, so background load hits all alike
                row = measure(lab, kind, args.threads, args.seconds)
                log(f"round {number + 1} {kind}: {json.dumps(row)}")
                rounds.append(row)
        paced = []
        for kind in ("ours", "ours_evidence"):
            for rate in (int(text) for text in args.rates.split(",")):
                row = measure(lab, kind, args.threads, args.seconds, rate)
                log(f"paced {kind} {rate}/s: {json.dumps(row)}")
                paced.append(row)
        results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "machine": f"{platform.node()} {os.uname().release}, {os.cpu_count()} CPUs",
                   "threads": args.threads, "seconds": args.seconds, "rounds": rounds, "paced": paced}
        print("\n".join(report(results)))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
