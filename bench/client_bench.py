#!/usr/bin/env python3
"""What the kubectl-bpf client costs per streamed event, and whether it keeps up with one busy node.

Issue 3 ("Measure and report"): the client's CPU per 10k streamed events and its memory; target:
it keeps up with 50k events/s from one node under 100 MB RSS. Two parts:

(a) offline, the real code path without a cluster. Realistic agent drop records, encoded with
    protocol.codec.encode exactly as the agent does, each line prefixed with a kubelet timestamp
    (RFC3339Nano, trailing zeros trimmed like Go's) and cut into ~16 KiB chunks at arbitrary byte
    positions, as a followed pod log arrives. A child process (so its RSS is the client's alone)
    imports what the CLI imports, then replays the chunks through the same pieces a cluster
    session uses: a follower thread feeding protocol.stream.RecordStream and putting NodeRecords
    on a queue (kube/session.py _follow), the real Session.items() loop and cli/live.run_session
    on the main thread, and gadgets/drops/cluster.ClusterOutput (with PodIndex) rendering -o json
    or the table to stdout, which is /dev/null. Only the HTTP read (TLS, chunked decoding in
    urllib3) is missing; part (b) has it. Measured with getrusage: CPU seconds per 10k events and
    the highest sustainable rate (as fast as possible), then paced at --rate (default 50k/s): CPU
    share, whether the consumer kept up (queue depth, lag), and peak RSS (ru_maxrss).

(b) live, on the local cluster (``hack/local-cluster up``): the plugin as a user runs it,
    ``python3 -m kubectl_bpf drops -n NS server -o json --duration D > file``, while this host
    floods the pod with UDP to closed ports; the client process's CPU time and VmHWM are sampled
    from /proc, and the events it printed are compared with the agent's summary (drops, events,
    lost) and checked for seq gaps. Two runs: the tracer with its real limits (kube/jobs.py) under
    the highest rate this host generates, and the tracer with its CPU limit lifted
    (--live-agent-cpu, via the Job-builder patch in cluster_latency.py) under a flood paced at
    --rate, so that the client, not the agent's 250m quota, decides whether 50k events/s get
    through. The pod-log directory is watched meanwhile: at ~500 bytes a record, 50k events/s is
    ~25 MB/s of container log, and the kubelet rotates container logs at containerLogMaxSize
    (10 MiB by default, checked every 10 s); what a follow stream does at rotation (records lost?
    seq gaps? the stream ends?) is reported from the client's own output.

Run as root from the repository root:  python3 bench/client_bench.py [--offline-only|--live-only]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)  # the plugin's code, and the cluster helpers next to this file

import cluster_latency as cl  # noqa: E402 -- after the path setup above

from kubectl_bpf.protocol import codec  # noqa: E402

CHUNK_BYTES = 16 * 1024
TARGET_RSS_MB = 100
TARGET_RATE = 50_000
NODE = "node-1"
POD_IP = "10.88.0.5"
CONTAINER_ID = "0f" * 32
NETNS = 4026532834
BASE_EPOCH = 1795640400  # 2026-11-24T21:00:00Z
PEERS = 300  # pod IPs the client can name (targets.peer_names): a mid-sized cluster
AGENT_AFTER_FLOOD_S = 8  # the agent's --duration outlasts the flood by this much
# ~4 MB/s of container log: past 10 MiB at every kubelet check (10 s), so a rotation each time,
# at a rate the agent handles well within its CPU quota (no backlog, no memory spike).
STOP_TEST_RATE = 10_000
LIVE_PORTS = range(cl.CLOSED_PORT, cl.CLOSED_PORT + cl.FLOOD_PORTS)


# -- (a) offline -----------------------------------------------------------------------------------


def kubelet_timestamp(epoch_ns: int) -> str:
    """RFC3339Nano as the runtime writes it: nanoseconds with trailing zeros trimmed."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def agent_time(epoch_ns: int) -> str:
    """The agent's own format (gadgets/drops/node.py wall_time): microseconds, always six digits."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1000:06d}Z"


def drop_payload(rng: random.Random, epoch_ns: int) -> dict[str, Any]:
    """A drop as the agent builds it: mostly UDP to closed ports from many peers (a scan, a bad
    client), some netfilter TCP drops, a few egress purges, like what the e2e cluster shows."""
    kind = rng.random()
    peer = f"10.88.{rng.randrange(1, 3)}.{rng.randrange(2, 250)}"
    record: dict[str, Any] = {
        "time": agent_time(epoch_ns), "reason": "NO_SOCKET", "reason_code": 3,
        "location": "__udp4_lib_rcv+0x4bc", "protocol": "UDP", "ip_proto": 17, "src": peer, "dst": POD_IP,
        "sport": rng.randrange(32768, 61000), "dport": rng.randrange(9999, 10015), "icmp_type": None,
        "icmp_code": None, "direction": "ingress", "netns": NETNS, "ifname": "eth0", "ifindex": 2,
        "len_bytes": 19,
    }
    if kind < 0.15:
        record.update(reason="NETFILTER_DROP", reason_code=6, location="nft_do_chain+0x3e8", protocol="TCP",
                      ip_proto=6, dport=rng.choice((5432, 6379, 9090)), len_bytes=60)
    elif kind < 0.18:
        record.update(reason="QUEUE_PURGE", reason_code=104, location="sk_stream_kill_queues+0x57",
                      protocol="TCP", ip_proto=6, src=POD_IP, dst=peer, sport=8080, direction="egress",
                      netns=4026531833, ifname=None, ifindex=0, len_bytes=0)
    return record


def generate(path: str, events: int, *, seed: int = 7) -> int:
    """Write ``events`` drop lines (plus preflight, ready, stats, summary, end) as a pod log with
    timestamps=true; returns the file size. Timestamps advance as at TARGET_RATE."""
    rng = random.Random(seed)
    seq = 0
    epoch_ns = BASE_EPOCH * 1_000_000_000 + 123_456_789
    step_ns = 1_000_000_000 // TARGET_RATE

    def line(record_type: str, payload: dict[str, Any]) -> str:
        nonlocal seq
        seq += 1
        stamp = kubelet_timestamp(epoch_ns + rng.randrange(0, 999))
        return f"{stamp} {codec.encode(record_type, seq, payload)}\n"

    with open(path, "w", encoding="utf-8") as out:
        out.write(line("preflight", {
            "gadget": "drops", "agent_version": "0.1.0", "kernel": "6.18.44", "btf": True,
            "hook": "tp_btf/kfree_skb", "capabilities": ["SYS_PTRACE", "SYSLOG", "PERFMON", "BPF"],
            "lockdown": "none", "target": {"netns": [NETNS], "ips": [POD_IP], "pids": 1,
                                           "containers": {CONTAINER_ID: NETNS}, "whole_host": False}}))
        out.write(line("ready", {"time": agent_time(epoch_ns), "load_ms": 120.0, "prog_id": 42}))
        batch: list[str] = []
        for index in range(events):
            epoch_ns += step_ns
            batch.append(line("drop", drop_payload(rng, epoch_ns)))
            if (index + 1) % (TARGET_RATE * 15) == 0:  # the agent's stats heartbeat, every 15 s
                batch.append(line("stats", {"drops": index + 1, "events": index + 1, "lost": 0,
                                            "suppressed": 0, "elapsed_s": (index + 1) / TARGET_RATE}))
            if len(batch) >= 4096:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
        out.write(line("summary", {"drops": events, "events": events, "lost": 0, "suppressed": 0,
                                   "unaccounted": 0, "missed": 0, "reasons": {"NO_SOCKET": events},
                                   "flows": [], "flow_count": 0, "duration_s": events / TARGET_RATE,
                                   "stopped_by": "duration"}))
        out.write(line("end", {"status": "ok", "exit_code": 0}))
    return os.path.getsize(path)


def status_kib(field: str, pid: str = "self") -> int:
    """VmRSS / VmHWM from /proc: ru_maxrss alone cannot tell the import baseline from the peak."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for text in handle:
            if text.startswith(field + ":"):
                return int(text.split()[1])
    return 0


def child(data: str, events_in_file: int, output: str, rate: float, result_path: str) -> None:
    """The measured process: real client pieces, fed from ``data`` (see the module docstring)."""
    from kubectl_bpf.cli import live  # noqa: PLC0415 -- imported here: the parent needs none of it
    from kubectl_bpf.gadgets.drops import cluster  # noqa: PLC0415
    from kubectl_bpf.gadgets.drops import command as _command  # noqa: F401, PLC0415 -- the CLI's imports
    from kubectl_bpf.kube import session, targets  # noqa: PLC0415
    from kubectl_bpf.protocol import stream  # noqa: PLC0415

    baseline_kib = status_kib("VmRSS")
    pod = targets.PodTarget(namespace="shop", name="web-0", uid="uid", node=NODE, ips=(POD_IP,),
                            container_ids=(CONTAINER_ID,), host_network=False, phase="Running")
    peers = {f"10.88.{1 + i // 248}.{2 + i % 248}": f"shop/client-{i}" for i in range(PEERS)}
    index = cluster.PodIndex([targets.NodeGroup(node=NODE, pods=(pod,))], peers)
    view = cluster.ClusterOutput(index, output=output, aggregate=False)
    size = os.path.getsize(data)

    class Replay:
        """Stands in for kube.session.Session: the real items() loop, over the queue a follower
        thread fills from the file the way Session._follow fills it from the log stream."""

        items = session.Session.items

        def __init__(self) -> None:
            self._items: queue.Queue[Any] = queue.Queue()
            self._closing = threading.Event()
            self._runs = [None]  # items() counts one NodeFinished per run
            self.max_depth = 0
            self.lag_s = 0.0  # how far behind the pacing schedule the feed fell, at most
            self.records = 0
            self.started = 0.0
            self.reader_cpu_s = 0.0  # this thread's own CPU: reading, splitting, decoding, queueing

        def start(self) -> None:
            threading.Thread(target=self._follow, daemon=True).start()

        def _follow(self) -> None:
            record_stream = stream.RecordStream()
            bytes_per_s = rate * size / max(1, events_in_file) if rate else 0.0
            done = 0
            self.started = time.monotonic()
            with open(data, "rb") as handle:
                while True:
                    chunk = handle.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    if bytes_per_s:
                        due = self.started + done / bytes_per_s
                        now = time.monotonic()
                        if due > now:
                            time.sleep(due - now)
                        else:
                            self.lag_s = max(self.lag_s, now - due)
                    done += len(chunk)
                    for record in record_stream.feed(chunk):
                        session.Session._put(self, session.NodeRecord(NODE, record))  # type: ignore[arg-type]
                        self.records += 1
                    self.max_depth = max(self.max_depth, self._items.qsize())
            for record in record_stream.flush():
                self._items.put(session.NodeRecord(NODE, record))
            self.reader_cpu_s = time.thread_time()
            self._items.put(session.NodeFinished(NODE, None if record_stream.ended else "truncated", 0))

        def stop(self) -> None:
            pass

        def close(self, *, force: bool = False) -> None:
            pass

        def __enter__(self) -> "Replay":
            return self

        def __exit__(self, *exc_info: object) -> None:
            pass

    replay = Replay()
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic()
    code = live.run_session(replay, on_record=view.handle)  # type: ignore[arg-type]
    view.finish()
    sys.stdout.flush()
    wall = time.monotonic() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {
        "output": output, "rate": rate, "events": events_in_file, "records": replay.records, "code": code,
        "cpu_s": cpu, "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
        "wall_s": wall, "baseline_rss_kib": baseline_kib, "maxrss_kib": after.ru_maxrss,
        "hwm_kib": status_kib("VmHWM"), "max_queue": replay.max_depth, "lag_s": replay.lag_s,
        "reader_cpu_s": replay.reader_cpu_s,
    }
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(result, out)


def run_child(data: str, events: int, output: str, rate: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix="kbpf-client-", suffix=".json") as result:
        argv = [sys.executable, os.path.abspath(__file__), "--child", data, str(events), output, str(rate),
                result.name]
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False, cwd=REPO, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"client replay failed ({done.returncode}): {done.stderr[-2000:]}")
        with open(result.name, encoding="utf-8") as handle:
            return dict(json.load(handle))


def offline(events: int, rate: float, repeat: int) -> list[dict[str, Any]]:
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None  # page cache either way, never RSS
    with tempfile.NamedTemporaryFile(prefix="kbpf-client-", suffix=".log", dir=directory) as data:
        started = time.monotonic()
        size = generate(data.name, events)
        print(f"(a) offline: {events} drop records, {size / events:.0f} bytes/line with the kubelet "
              f"timestamp, {size / (1 << 20):.0f} MiB, {CHUNK_BYTES // 1024} KiB chunks "
              f"(generated in {time.monotonic() - started:.1f} s); max rate x{repeat}, then paced",
              flush=True)
        results = []
        for output in ("json", "table"):
            for pace in [0.0] * repeat + [rate]:
                result = run_child(data.name, events, output, pace)
                results.append(result)
                print(f"  -o {output:<5} {'max rate' if not pace else f'paced {pace:.0f}/s':<14} "
                      f"cpu {result['cpu_s']:.2f} s, wall {result['wall_s']:.2f} s, maxrss "
                      f"{result['maxrss_kib'] / 1024:.1f} MiB", flush=True)
    print(f"\n{'-o':<6} {'feed':<12} {'CPU s/10k':>9} {'reader':>7} {'render':>7} {'events/s':>9} "
          f"{'CPU share':>9} {'max queue':>9} {'lag s':>6} {'RSS base':>9} {'RSS peak':>9}")
    for result in results:
        per = 1e4 / result["events"]
        feed = "max rate" if not result["rate"] else f"paced {result['rate'] / 1000:.0f}k/s"
        render_s = result["cpu_s"] - result["reader_cpu_s"]
        print(f"{result['output']:<6} {feed:<12} {result['cpu_s'] * per:>9.3f} "
              f"{result['reader_cpu_s'] * per:>7.3f} {render_s * per:>7.3f} "
              f"{result['events'] / result['wall_s']:>9.0f} "
              f"{result['cpu_s'] / result['wall_s']:>9.2f} {result['max_queue']:>9} {result['lag_s']:>6.2f} "
              f"{result['baseline_rss_kib'] / 1024:>7.1f}Mi {result['maxrss_kib'] / 1024:>7.1f}Mi")
    print("(reader: the follower thread, RecordStream + queue put; render: the main thread, items() + "
          "ClusterOutput.handle; CPU share: of one core, over the run's wall time)")
    for output in ("json", "table"):
        best = [r for r in results if r["output"] == output and not r["rate"]]
        paced = next(r for r in results if r["output"] == output and r["rate"])
        per_10k = statistics.median(r["cpu_s"] / r["events"] * 1e4 for r in best)
        # The session's queue is bounded now, so its depth no longer shows a lag: judge by
        # the rate one core sustains, and by how far the paced feed fell behind.
        keeps_up = 1e4 / per_10k >= rate and paced["lag_s"] < 0.5
        rss_ok = paced["maxrss_kib"] / 1024 < TARGET_RSS_MB
        print(f"target -o {output}: {rate:.0f} events/s -> {'PASS' if keeps_up else 'FAIL'} "
              f"({per_10k:.3f} CPU s per 10k = one core saturates at ~{1e4 / per_10k:.0f}/s; "
              f"{paced['cpu_s'] / paced['wall_s']:.2f} of a core at {rate:.0f}/s, "
              f"lag {paced['lag_s']:.2f} s); "
              f"RSS at {rate:.0f}/s under {TARGET_RSS_MB} MB -> {'PASS' if rss_ok else 'FAIL'} "
              f"({paced['maxrss_kib'] / 1024:.1f} MiB; overloaded, as fast as it can read: "
              f"{max(r['maxrss_kib'] for r in best) / 1024:.0f} MiB with {max(r['max_queue'] for r in best)} "
              "records queued)")
    return results


# -- (b) live --------------------------------------------------------------------------------------


class ProcSampler(threading.Thread):
    """CPU time (utime+stime) and VmHWM/VmRSS of one process from /proc, every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = str(pid)
        self._halt = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self.cpu_s = 0.0
        self.hwm_kib = 0
        self.rss_kib = 0
        self.timeline: list[tuple[float, float]] = []  # (monotonic, cpu seconds)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with open(f"/proc/{self._pid}/stat", encoding="ascii") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                self.cpu_s = (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
                self.hwm_kib = max(self.hwm_kib, status_kib("VmHWM", self._pid))
                self.rss_kib = max(self.rss_kib, status_kib("VmRSS", self._pid))
            except (OSError, ValueError, IndexError):
                return  # the process is gone (a zombie has no status lines left)
            self.timeline.append((time.monotonic(), self.cpu_s))
            self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def busiest(self, window_s: float = 2.0) -> float:
        """Highest CPU share over any window: the client at full stream, not averaged with start-up."""
        best = 0.0
        for i, (start, cpu_start) in enumerate(self.timeline):
            for at, cpu in self.timeline[i + 1:]:
                if at - start >= window_s:
                    best = max(best, (cpu - cpu_start) / (at - start))
                    break
        return best


def live_run(target: cl.Target, flooder: cl.Flooder, *, rate: float, seconds: float, label: str,
             pause: Optional[tuple[float, float]] = None) -> dict[str, Any]:
    """One plugin run under a flood. ``pause`` (after, for) SIGSTOPs the client ``after`` seconds
    into the flood for ``for`` seconds: a Ctrl-Z, a laptop lid, a starved CPU. Its log stream then
    lags the file the kubelet is following by more than one rotation."""
    duration = seconds + AGENT_AFTER_FLOOD_S
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.NamedTemporaryFile(prefix="kbpf-client-live-", suffix=".jsonl", dir=directory) as out:
        run = cl.PluginRun(target.env, target.namespace, duration=duration, stdout_path=out.name,
                           ports=LIVE_PORTS, resources=target.resources)
        run.start()
        assert run.process is not None
        sampler = ProcSampler(run.process.pid)
        sampler.start()
        watch: Optional[cl.LogDirWatch] = None
        tracer_cgroup: Optional[cl.CgroupSampler] = None
        flood: Optional[subprocess.Popen[str]] = None
        try:
            tracer = cl.wait_tracer_container(target.core, target.selector, 90,
                                              lambda: run.process is not None and run.process.poll() is None)
            if tracer is None:
                raise RuntimeError("the tracer pod never ran: " + " | ".join(run.stderr_tail))
            watch = cl.LogDirWatch(cl.pod_logs_root(), tracer[1])
            watch.start()
            tracer_cgroup = cl.CgroupSampler(tracer[1], tracer[2])
            tracer_cgroup.start()
            if not run.wait_ready_in_file(60):
                raise RuntimeError("no ready record: " + " | ".join(run.stderr_tail))
            cpu_at_ready = sampler.cpu_s
            agent_stops = time.monotonic() + duration  # about: the agent counts from its own ready
            flood_started = time.monotonic()
            flood = flooder.start(target.address, rate=rate, seconds=seconds)
            if pause is not None:
                time.sleep(pause[0])
                os.kill(run.process.pid, signal.SIGSTOP)
                try:
                    time.sleep(pause[1])
                finally:
                    os.kill(run.process.pid, signal.SIGCONT)
            flood_result = cl.Flooder.result(flood)
            flood_wall = time.monotonic() - flood_started
            code = run.wait(duration + 180)
            drain_s = time.monotonic() - agent_stops
        finally:
            if flood is not None and flood.poll() is None:
                flood.kill()
            run.kill()
            sampler.stop()
            if watch is not None:
                watch.stop()
            if tracer_cgroup is not None:
                tracer_cgroup.stop()
        size = os.path.getsize(out.name)
    return {"label": label, "run": run, "code": code, "sampler": sampler, "watch": watch,
            "flood": flood_result,
            "cpu_at_ready": cpu_at_ready, "flood_wall": flood_wall, "stdout_bytes": size, "drain_s": drain_s,
            "pause": pause, "tracer": tracer_cgroup}


def report_live(result: dict[str, Any]) -> list[str]:
    run: cl.PluginRun = result["run"]
    sampler: ProcSampler = result["sampler"]
    watch: Optional[cl.LogDirWatch] = result["watch"]
    flood = result["flood"]
    summary = run.summary or {}
    pause = result["pause"]
    events = int(summary.get("events") or 0)
    streamed_cpu = sampler.cpu_s - result["cpu_at_ready"]
    received = run.drops
    lines = [
        f"\n{result['label']}",
        f"  flood: {flood['sent']} datagrams at {flood['rate']:.0f}/s for {flood['elapsed_s']:.1f} s"
        + (f"; client SIGSTOPped {pause[0]:g} s into it for {pause[1]:g} s" if pause else ""),
        (f"  agent summary: drops {summary.get('drops')} = events {events} + lost {summary.get('lost')} + "
         f"suppressed {summary.get('suppressed')} (unaccounted {summary.get('unaccounted')}); "
         f"{events / max(1e-9, result['flood_wall']):.0f} events/s during the flood" if summary else
         "  agent summary: NONE, the agent did not finish (see the client's stderr below)"),
        tracer_line(result["tracer"]),
        f"  client: exit {result['code']}, end {(run.end or {}).get('status')}, {received} flood drop lines "
        f"({run.records} records, {result['stdout_bytes'] / (1 << 20):.0f} MiB); "
        f"seq gaps {run.seq_gaps}, {run.seq_missing} records missing",
        f"  client cost: {streamed_cpu:.2f} CPU s after ready = "
        f"{streamed_cpu / max(1, run.records) * 1e4:.3f} s per 10k records; busiest 2 s "
        f"{sampler.busiest():.2f} of a core; VmHWM {sampler.hwm_kib / 1024:.1f} MiB "
        f"(whole run, start-up included: {sampler.cpu_s:.2f} CPU s)",
        f"  backlog: the client exited {result['drain_s']:.1f} s after the agent's --duration ran out "
        "(the time it needed to print what was queued or still in the log stream)",
    ]
    lines += cl.describe_log_loss(run, watch)
    tail = [text for text in run.stderr_tail if "created" not in text and "scheduled" not in text]
    if tail:
        lines.append("  client stderr: " + " | ".join(tail[-4:]))
    return lines


def tracer_line(sampler: Optional[cl.CgroupSampler]) -> str:
    if sampler is None or not sampler.samples:
        return "  tracer pod: (cgroup not sampled)"
    return (f"  tracer pod: memory peak {cl.mib(sampler.kernel_peak)} of {cl.mib(sampler.limit_bytes or 0)} "
            f"(anon {cl.mib(sampler.peak_anon)}), busiest 1 s {sampler.max_cores():.2f} cores, quota "
            f"{sampler.quota}; throttled in {sampler.throttled()[1]}/{sampler.throttled()[0]} periods")


def live(args: argparse.Namespace) -> None:
    size, files = cl.kubelet_log_settings()
    env = cl.cluster_env()
    core, batch = cl.api(env)
    print(f"\n(b) live on the local cluster: kubelet containerLogMaxSize {size}, "
          f"containerLogMaxFiles {files}, "
          f"pod logs in {cl.pod_logs_root()}; {cl.describe_image(env)}", flush=True)
    flooder = cl.Flooder()
    try:
        with cl.scratch_namespace(env, "kbpf-client") as namespace:
            address = cl.start_server(env, namespace)
            base = cl.Target(env=env, namespace=namespace, address=address, core=core, batch=batch,
                             selector=cl.tracer_selector(namespace))
            runs = [
                (base, 0.0, "tracer with its real limits, flood as fast as this host sends"),
                (cl.Target(env=env, namespace=namespace, address=address, core=core, batch=batch,
                           selector=base.selector, resources=(args.live_agent_cpu, args.live_agent_memory)),
                 args.rate,
                 f"tracer cpu {args.live_agent_cpu} memory {args.live_agent_memory} (experiment: the agent "
                 f"is not the bottleneck), flood paced at {args.rate:.0f}/s"),
            ]
            for target, rate, label in runs:
                result = live_run(target, flooder, rate=rate, seconds=args.live_seconds, label=label)
                print("\n".join(report_live(result)), flush=True)
                cl.wait_gone(base)
            if args.pause_seconds > 0:
                # Two rotations at least while stopped (see STOP_TEST_RATE).
                result = live_run(base, flooder, rate=STOP_TEST_RATE, seconds=args.pause_seconds + 6,
                                  pause=(2.0, args.pause_seconds),
                                  label=f"log rotation while the client's stream lags: tracer with its real "
                                  f"limits, flood paced at {STOP_TEST_RATE}/s, client stopped for "
                                  f"{args.pause_seconds:g} s")
                print("\n".join(report_live(result)), flush=True)
                cl.wait_gone(base)
    finally:
        flooder.close()


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), sys.argv[6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="(a): drop records replayed per run")
    parser.add_argument("--repeat", type=int, default=3, help="(a): as-fast-as-possible runs per output")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="events/s of the paced runs")
    parser.add_argument("--live-seconds", type=float, default=15.0, help="(b): flood length per run")
    parser.add_argument("--pause-seconds", type=float, default=25.0, help="(b): SIGSTOP the client this "
                        "long during a flood, to see a log rotation behind its stream (0: skip)")
    parser.add_argument("--live-agent-cpu", default="1", help="(b): the tracer's cpu in the paced run")
    parser.add_argument("--live-agent-memory", default="512Mi", help="(b): its memory in the paced run (the "
                        "real 128Mi is OOM-killed at 50k/s when the agent falls behind: see cluster_latency)")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--offline-only", action="store_true")
    parts.add_argument("--live-only", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}",
          flush=True)
    if not args.live_only:
        offline(args.events, args.rate, args.repeat)
    if not args.offline_only:
        if os.geteuid() != 0:
            print("client_bench: (b) needs root (pod log directory, cgroups)", file=sys.stderr)
            return 2
        live(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
