"""Benchmark `kubectl-bpf dns --local` against `tcpdump -l port 53` on the same DNS flood.

Issue 12, "Bench". One run, side by side: bench/dns_flood.c (compiled with gcc into a temp
dir) plays client and server on 127.0.0.1 inside a network namespace the bench creates, each
lookup a real query and a real answer. At each rate, each capturer runs alone in that netns
and the bench reports:

* whether it kept up: lookups reported (ours: matched query+answer records; tcpdump: lines
  printed) against lookups sent, and the packets the kernel dropped from its socket queue;
* CPU seconds of the capture process (user+system): its whole run (wait4's rusage, start-up
  included) and during the flood alone (/proc/PID/stat before and after), per 10k lookups;
* for ours, the socket filter's own cost per packet in the kernel (run_time_ns / run_cnt,
  with kernel.bpf_stats_enabled=1 for the run, restored after).

tcpdump decodes every packet to a text line, as ours decodes every packet to a JSON record
(written to a file, as tcpdump's lines are). Neither matches queries to answers but ours.

Usage: python3 bench/dns_bench.py [--rates 5000,20000,50000,0] [--seconds 3] [--json FILE]
Root is needed (netns, BPF). Everything it creates is removed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FLOOD_SOURCE = os.path.join(HERE, "dns_flood.c")
PER = 10_000  # CPU is reported per this many lookups
READY_TIMEOUT_S = 20.0


def log(message: str) -> None:
    print(f"[dns-bench] {message}", file=sys.stderr, flush=True)


def run(argv: list[str], *, check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def cpu_now(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_rusage(proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """CPU seconds (user + system) of a child that is ending."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid, _status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.02)
    proc.kill()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = -9
    return usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, seconds: float) -> None:
        self.netns = f"kbpf-dnsbench-{secrets.token_hex(3)}"
        self.tmp = tempfile.mkdtemp(prefix="kbpf-dnsbench-")
        self.flood = os.path.join(self.tmp, "dns_flood")
        self.seconds = seconds
        self._stats_before: Optional[str] = None

    def setup(self) -> None:
        run(["gcc", "-O2", "-Wall", "-o", self.flood, FLOOD_SOURCE])
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        with open("/proc/sys/kernel/bpf_stats_enabled", encoding="ascii") as stats:
            self._stats_before = stats.read().strip()
        with open("/proc/sys/kernel/bpf_stats_enabled", "w", encoding="ascii") as stats:
            stats.write("1")

    def close(self) -> None:
        if self._stats_before is not None:
            with open("/proc/sys/kernel/bpf_stats_enabled", "w", encoding="ascii") as stats:
                stats.write(self._stats_before)
        run(["ip", "netns", "del", self.netns], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def flood_once(self, rate: int) -> dict[str, Any]:
        count = int(rate * self.seconds) if rate else 1 << 40
        out = run(["ip", "netns", "exec", self.netns, self.flood, str(count), str(self.seconds), str(rate)])
        result: dict[str, Any] = json.loads(out)
        return result

    def ours(self, rate: int) -> dict[str, Any]:
        out_path = os.path.join(self.tmp, "ours.jsonl")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "kubectl_bpf", "dns", "--local", "--netns",
                                     f"/run/netns/{self.netns}", "--timeout", "1", "-o", "json"],
                                    stdout=out, stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            ready = self._wait_for_line(out_path, '"type":"ready"')
            before = cpu_now(proc.pid)
            flood = self.flood_once(rate)
            prog = self._prog_stats(json.loads(ready)["prog_id"])
            time.sleep(1.5)  # the last answers reach the stream; stragglers would be UNANSWERED after 1 s
            flood_cpu = cpu_now(proc.pid) - before
            proc.send_signal(signal.SIGINT)
            cpu = wait_rusage(proc, 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                os.wait4(proc.pid, 0)
        with open(out_path, encoding="utf-8") as records_file:
            records = [json.loads(line) for line in records_file]
        summary = next(r for r in records if r["type"] == "summary")
        lookups = sum(1 for r in records if r["type"] == "dns" and r["rcode"] == "NOERROR")
        return {"flood": flood, "cpu_s": cpu, "flood_cpu_s": flood_cpu, "reported": lookups,
                "summary": summary, "prog": prog, "lost": summary["packets_lost"]}

    def tcpdump(self, rate: int) -> dict[str, Any]:
        out_path = os.path.join(self.tmp, "tcpdump.txt")
        err_path = os.path.join(self.tmp, "tcpdump.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, "tcpdump", "-l", "-n", "-i", "lo",
                                     "port", "53"], stdout=out, stderr=err)
        try:
            self._wait_for_line(err_path, "listening on")
            before = cpu_now(proc.pid)
            flood = self.flood_once(rate)
            time.sleep(1.5)
            flood_cpu = cpu_now(proc.pid) - before
            proc.send_signal(signal.SIGINT)
            cpu = wait_rusage(proc, 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                os.wait4(proc.pid, 0)
        with open(out_path, "rb") as lines:
            printed = sum(1 for _ in lines)
        with open(err_path, encoding="utf-8", errors="replace") as err_file:
            stats = err_file.read()
        dropped = next((int(line.split()[0]) for line in stats.splitlines() if "dropped by kernel" in line),
                       0)
        # a lookup is two lines (query, answer)
        return {"flood": flood, "cpu_s": cpu, "flood_cpu_s": flood_cpu, "reported": printed // 2,
                "lost": dropped, "stats": stats.strip()}

    @staticmethod
    def _wait_for_line(path: str, needle: str) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(path, encoding="utf-8", errors="replace") as text:
                for line in text:
                    if needle in line:
                        return line
            time.sleep(0.05)
        raise RuntimeError(f"no {needle!r} in {path} after {READY_TIMEOUT_S} s")

    @staticmethod
    def _prog_stats(prog_id: int) -> dict[str, int]:
        info = json.loads(run(["bpftool", "prog", "show", "id", str(prog_id), "-j"]))
        return {"run_cnt": int(info.get("run_cnt", 0)), "run_time_ns": int(info.get("run_time_ns", 0))}


def row(name: str, rate: int, result: dict[str, Any]) -> list[str]:
    sent = result["flood"]["sent"]
    achieved = sent / result["flood"]["elapsed_s"]
    kept_up = "yes" if result["reported"] >= sent and not result["lost"] else "NO"
    cpu_per = result["flood_cpu_s"] / sent * PER if sent else 0.0
    kernel = ""
    if "prog" in result and result["prog"]["run_cnt"]:
        kernel = f"{result['prog']['run_time_ns'] / result['prog']['run_cnt']:.0f}"
    return [name, str(rate or "max"), f"{achieved:,.0f}", f"{sent:,}", f"{result['reported']:,}",
            str(result["lost"]), kept_up, f"{result['cpu_s']:.2f}", f"{result['flood_cpu_s']:.2f}",
            f"{cpu_per:.3f}", kernel]


def report(results: list[dict[str, Any]]) -> str:
    headers = ["CAPTURE", "RATE", "LOOKUPS/S", "SENT", "REPORTED", "KERNEL-DROPS", "KEPT UP", "CPU_S",
               "FLOOD_CPU_S", f"CPU_S/{PER // 1000}k", "FILTER_NS/PKT"]
    rows = [headers] + [row(r["capture"], r["rate"], r) for r in results]
    widths = [max(len(line[i]) for line in rows) for i in range(len(headers))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in rows)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="2000,5000,10000,15000,20000,0",
                        help="lookups/s, comma-separated; 0: as fast as the flood goes")
    parser.add_argument("--seconds", type=float, default=3.0, help="flood length per run")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("dns_bench: needs root (network namespaces, BPF)", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    bench = Bench(args.seconds)
    results = []
    try:
        bench.setup()
        for rate in (int(text) for text in args.rates.split(",")):
            for name, capture in (("kubectl-bpf dns", bench.ours), ("tcpdump -l port 53", bench.tcpdump)):
                log(f"{name} at {rate or 'max'} lookups/s")
                results.append({"capture": name, "rate": rate, **capture(rate)})
    finally:
        bench.close()
    print(report(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
