#!/usr/bin/env python3
"""What a fan-out to N nodes costs the kubectl-bpf client, before anyone runs one (issue 10, part 6).

For N = 10, 50, 200 node streams, one child process per N (so its RSS and CPU are the client's
alone) runs the client's real merge path: kube.session.Session with one follower thread per node
feeding that node's protocol.stream.RecordStream and putting NodeRecords on the shared queue
(Session._follow, _put), Session.items() and cli.live.run_session on the main thread, and
gadgets/drops/cluster.ClusterOutput with a PodIndex naming every node's pod, its peers and the
nodes rendering -o json (or the table) to /dev/null. Only the Kubernetes side is replaced, through
Session's ``source_for`` seam: each node's "pod log" is a pipe, read in 64 KiB reads as a followed
log arrives, written by a forked generator process that encodes realistic drop records with
protocol.codec.encode exactly as the agent does (bench/client_bench.py drop_payload: UDP to
closed ports, netfilter TCP drops, egress purges), each line prefixed with a kubelet timestamp.
What is not in it: TLS and HTTP chunked decoding of N log connections (bench/client_bench.py
part (b) measures that for one node), the API calls of start-up, and the lease renewals.

Two runs per N:
- max rate: every node's pipe is kept full; the client merges as fast as it can. CPU seconds per
  10k events (getrusage of the client process) and the events/s one client sustains;
- paced: an aggregate --rate (default 5000 events/s, spread evenly over the N nodes, each node
  writing what is due every 100 ms): the CPU share of one core, and the merge latency, from the
  generator's write into the pipe to the record reaching the renderer (CLOCK_MONOTONIC is the
  same in both processes; one record in SAMPLE_EVERY carries its send time, removed before
  rendering).
Peak memory is ru_maxrss of the client process (and its RSS after imports, before any node).
Each run also checks the merge is exact: every node's records arrived once, in order, with its
node name, and every node finished complete.

Run from the repository root:  python3 bench/fanout_bench.py [--nodes 10,50,200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import client_bench  # noqa: E402 -- after the path setup above: the record shapes and timestamps

from kubectl_bpf.protocol import codec  # noqa: E402

READ_BYTES = 64 * 1024  # what one read of a followed log returns at most (urllib3's default amt)
TICK_S = 0.1  # paced: each node writes what is due this often, as a busy agent's writes batch up
MAX_RATE_RECORDS = 32  # max rate: records per write (~16 KiB)
SAMPLE_EVERY = 16  # one record in this many carries its send time
SENT_FIELD = "bench_sent_ns"
SENT_PLACEHOLDER = b'"bench_sent_ns":0'  # replaced with the time of the write
PODS_PER_NODE = 30  # peers the client can name: a mid-sized cluster's pods on every node


def node_ip(index: int) -> str:
    return f"172.18.{index // 250}.{index % 250 + 2}"


def pod_ip(index: int, pod: int = 0) -> str:
    return f"10.{64 + index // 256}.{index % 256}.{pod + 5}"


class NodeLog:
    """One node's agent log, written on demand (the generator never holds a whole log)."""

    def __init__(self, index: int, nodes: int, events: int, seed: int) -> None:
        self.index = index
        self.nodes = nodes
        self.events = events
        self.rng = random.Random(seed * 1000 + index)
        self.seq = 0
        self.sent = 0  # drop records written
        self.epoch_ns = client_bench.BASE_EPOCH * 1_000_000_000 + index * 1_000_003
        self.done = False
        self._ip = pod_ip(index)

    def _line(self, record_type: str, payload: dict[str, Any]) -> str:
        self.seq += 1
        stamp = client_bench.kubelet_timestamp(self.epoch_ns + self.rng.randrange(0, 999))
        return f"{stamp} {codec.encode(record_type, self.seq, payload)}\n"

    def head(self) -> str:
        target = {"netns": [client_bench.NETNS], "ips": [self._ip], "pids": 1,
                  "containers": {client_bench.CONTAINER_ID: client_bench.NETNS}, "whole_host": False}
        return (self._line("preflight", {"gadget": "drops", "agent_version": "0.1.0", "kernel": "6.18.44",
                                         "btf": True, "hook": "tp_btf/kfree_skb", "lockdown": "none",
                                         "capabilities": ["BPF", "PERFMON"], "target": target})
                + self._line("ready", {"time": client_bench.agent_time(self.epoch_ns), "load_ms": 120.0,
                                       "prog_id": 42}))

    def drops(self, count: int) -> str:
        """The next ``count`` drop lines (fewer at the end), then the summary and end."""
        lines = []
        for _ in range(min(count, self.events - self.sent)):
            self.epoch_ns += 20_000
            payload = client_bench.drop_payload(self.rng, self.epoch_ns)
            for key in ("src", "dst"):  # this node's pod, peers on the other nodes
                if payload[key] == client_bench.POD_IP:
                    payload[key] = self._ip
                else:
                    payload[key] = pod_ip(self.rng.randrange(self.nodes),
                                          self.rng.randrange(1, PODS_PER_NODE))
            if (self.seq + 1) % SAMPLE_EVERY == 0:
                payload[SENT_FIELD] = 0
            lines.append(self._line("drop", payload))
            self.sent += 1
        if self.sent >= self.events and not self.done:
            self.done = True
            lines.append(self._line("summary", {"drops": self.events, "events": self.events, "lost": 0,
                                                "suppressed": 0, "unaccounted": 0, "missed": 0,
                                                "reasons": {}, "flows": [], "flow_count": 0,
                                                "duration_s": 1.0, "stopped_by": "duration"}))
            lines.append(self._line("end", {"status": "ok", "exit_code": 0}))
        return "".join(lines)


def write_all(fd: int, data: bytes) -> None:
    """A blocking pipe write: the client's reader is the backpressure, as TCP is for a log stream."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def plan(logs: list[NodeLog], rate: float) -> list[list[bytes]]:
    """Every write of every node, built before the clock starts (the generator's own CPU must not
    decide the max rate): per tick when paced, 32 records at a time otherwise."""
    writes: list[list[bytes]] = []
    per_tick = rate * TICK_S / len(logs)
    for log in logs:
        node_writes = [log.head().encode()]
        tick = 0
        while not log.done:
            tick += 1
            due = int(per_tick * tick) - int(per_tick * (tick - 1)) if rate else MAX_RATE_RECORDS
            node_writes.append(log.drops(due).encode())
        writes.append(node_writes)
    return writes


def generate(write_fds: list[int], events_per_node: int, rate: float, go_fd: int) -> None:
    """The forked generator: every node's log into its pipe, paced or as fast as the pipes take it,
    once the client streams. Sampled records get their send time as they are written."""
    writes = plan([NodeLog(index, len(write_fds), events_per_node, seed=7)
                   for index in range(len(write_fds))], rate)
    os.read(go_fd, 1)
    started = time.monotonic()
    for step in range(max(len(node_writes) for node_writes in writes)):
        if rate:
            delay = started + step * TICK_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for fd, node_writes in zip(write_fds, writes):
            if step < len(node_writes):
                write_all(fd, node_writes[step].replace(SENT_PLACEHOLDER, b'"%b":%d' % (
                    SENT_FIELD.encode(), time.monotonic_ns())))
                node_writes[step] = b""
    for fd in write_fds:
        os.close(fd)


def child(nodes: int, events_per_node: int, rate: float, output: str, result_path: str) -> None:
    """The measured client process."""
    from kubectl_bpf.cli import live  # noqa: PLC0415 -- what the CLI imports, in the measured process only
    from kubectl_bpf.gadgets.drops import cluster  # noqa: PLC0415
    from kubectl_bpf.gadgets.drops import command as _command  # noqa: F401, PLC0415
    from kubectl_bpf.kube import client, session, settings, targets  # noqa: PLC0415
    from kubectl_bpf.protocol import exitcodes, spec, stream  # noqa: PLC0415

    baseline_kib = client_bench.status_kib("VmRSS")
    pipes = [os.pipe() for _ in range(nodes)]
    go_read, go_write = os.pipe()
    generator = os.fork()
    if generator == 0:  # the generator: no threads exist yet in this process
        try:
            os.close(go_write)
            for read_fd, _ in pipes:
                os.close(read_fd)
            generate([write_fd for _, write_fd in pipes], events_per_node, rate, go_read)
        finally:
            os._exit(0)
    os.close(go_read)
    for _, write_fd in pipes:
        os.close(write_fd)

    names = [f"node-{index:03d}" for index in range(nodes)]
    groups = [targets.NodeGroup(name, (targets.PodTarget(
        namespace="shop", name=f"web-{index}", uid=f"uid-{index}", node=name, ips=(pod_ip(index),),
        container_ids=(client_bench.CONTAINER_ID,), host_network=False, phase="Running"),))
        for index, name in enumerate(names)]
    peers = {pod_ip(index, pod): f"shop/client-{index}-{pod}" for index in range(nodes)
             for pod in range(1, PODS_PER_NODE)}
    peers.update({node_ip(index): f"node/{name}" for index, name in enumerate(names)})
    view = cluster.ClusterOutput(cluster.PodIndex(groups, peers), output=output, aggregate=False)
    read_fds = {name: read_fd for name, (read_fd, _) in zip(names, pipes)}

    class PipeLog:
        """A node's followed log: reads as they come, fed to the node's RecordStream."""

        def __init__(self, fd: int, record_stream: stream.RecordStream) -> None:
            self._fd = fd
            self._stream = record_stream

        def records(self) -> Iterator[dict[str, Any]]:
            while not self._stream.ended:
                chunk = os.read(self._fd, READ_BYTES)
                if not chunk:
                    break
                yield from self._stream.feed(chunk)
            os.close(self._fd)

        def close(self) -> None:
            """The generator ends every log; nothing to interrupt."""

    class ReplaySession(session.Session):
        """The real Session minus what talks to the API server (RBAC check, Jobs, start watch)."""

        def start(self) -> None:
            self.start_streams()
            os.write(go_write, b"go")  # the generator's clock starts with the followers

    kube = client.Kube(api=None, core=None, apps=None, batch=None, authz=None,  # type: ignore[arg-type]
                       context="bench", user="bench", namespace="shop", request_timeout_s=None)
    options = settings.SessionOptions(image="agent:bench", job_namespace="kubectl-bpf", privileged=False,
                                      start_timeout_s=60, ttl_s=300, max_duration_s=3600, lease_ttl_s=60)
    replay = ReplaySession(kube, gadget="drops", run_spec=spec.RunSpec(gadget="drops"), groups=groups,
                           options=options, command="kubectl-bpf drops -l app=web",
                           on_progress=lambda _: None,
                           source_for=lambda run, stream: PipeLog(read_fds[run.group.node], stream))

    latencies_us: list[float] = []
    last_seq = dict.fromkeys(names, 0)
    problems = {"out_of_order": 0, "wrong_node": 0}
    drops_seen = dict.fromkeys(names, 0)
    finished: list[Any] = []
    prefix = {name: pod_ip(index) for index, name in enumerate(names)}

    def on_record(node: str, record: dict[str, Any]) -> None:
        sent = record.pop(SENT_FIELD, None)
        if sent is not None:
            latencies_us.append((time.monotonic_ns() - sent) / 1000)
        seq = record["seq"]
        if seq != last_seq[node] + 1:
            problems["out_of_order"] += 1
        last_seq[node] = seq
        if record["type"] == "drop":
            drops_seen[node] += 1
            if prefix[node] not in (record["src"], record["dst"]):
                problems["wrong_node"] += 1
        view.handle(node, record)

    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic()
    code = live.run_session(replay, on_record=on_record, on_idle=view.flush, on_finished=finished.append)
    view.finish()
    sys.stdout.flush()
    wall = time.monotonic() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(generator, 0)
    events = sum(drops_seen.values())
    latencies_us.sort()
    result = {
        "nodes": nodes, "rate": rate, "output": output, "events": events,
        "expected": nodes * events_per_node, "code": code,
        "exact": (code == exitcodes.OK and all(count == events_per_node for count in drops_seen.values())
                  and not any(problems.values()) and sorted(f.node for f in finished) == names
                  and all(f.error is None and f.ended for f in finished)),
        "problems": problems,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "wall_s": wall,
        "baseline_rss_kib": baseline_kib, "maxrss_kib": after.ru_maxrss,
        "latency_p50_ms": statistics.median(latencies_us) / 1000 if latencies_us else None,
        "latency_p99_ms": latencies_us[int(len(latencies_us) * 0.99)] / 1000 if latencies_us else None,
        "latency_max_ms": latencies_us[-1] / 1000 if latencies_us else None,
        "samples": len(latencies_us),
    }
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(result, out)


def run_child(nodes: int, events_per_node: int, rate: float, output: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix="kbpf-fanout-", suffix=".json") as result:
        argv = [sys.executable, os.path.abspath(__file__), "--child", str(nodes), str(events_per_node),
                str(rate), output, result.name]
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              check=False, cwd=REPO, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"client replay failed ({done.returncode}): {done.stderr[-2000:]}")
        with open(result.name, encoding="utf-8") as handle:
            return dict(json.load(handle))


def fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", default="10,50,200", help="comma-separated node counts (10,50,200)")
    parser.add_argument("--events", type=int, default=60_000, help="drop records per max-rate run, all nodes")
    parser.add_argument("--rate", type=float, default=5000.0, help="paced runs: events/s over all nodes")
    parser.add_argument("--seconds", type=float, default=6.0, help="paced runs: how long")
    parser.add_argument("-o", "--output", choices=("json", "table"), default="json")
    parser.add_argument("--json", metavar="FILE", help="also save the raw results")
    args = parser.parse_args(argv)
    rows = []
    for nodes in [int(n) for n in args.nodes.split(",")]:
        fast = run_child(nodes, max(1, args.events // nodes), 0.0, args.output)
        paced = run_child(nodes, max(1, int(args.rate * args.seconds) // nodes), args.rate, args.output)
        rows.append((fast, paced))
        print(f"N={nodes}: max rate {fast['events']} events in {fast['wall_s']:.1f} s, paced "
              f"{paced['events']} in {paced['wall_s']:.1f} s", file=sys.stderr, flush=True)
    print(f"-o {args.output}; max rate: {args.events} events over N nodes; paced: {args.rate:.0f} events/s "
          f"over N nodes for {args.seconds:g} s")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'N':>4} {'CPU s/10k':>9} {'ev/s/core':>9} {'wall ev/s':>9} {'RSS base':>8} {'RSS peak':>8} "
          f"{'p50 ms':>7} "
          f"{'p99 ms':>7} | {'paced CPU':>9} {'CPU s/10k':>9} {'RSS peak':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'exact':>5}")
    for fast, paced in rows:
        print(f"{fast['nodes']:>4} {fast['cpu_s'] / fast['events'] * 1e4:>9.3f} "
              f"{fast['events'] / fast['cpu_s']:>9.0f} {fast['events'] / fast['wall_s']:>9.0f} "
              f"{fast['baseline_rss_kib'] / 1024:>6.1f}Mi "
              f"{fast['maxrss_kib'] / 1024:>6.1f}Mi {fmt(fast['latency_p50_ms'], '7.1f')} "
              f"{fmt(fast['latency_p99_ms'], '7.1f')} | {paced['cpu_s'] / paced['wall_s']:>9.2f} "
              f"{paced['cpu_s'] / paced['events'] * 1e4:>9.3f} {paced['maxrss_kib'] / 1024:>6.1f}Mi "
              f"{fmt(paced['latency_p50_ms'], '7.1f')} {fmt(paced['latency_p99_ms'], '7.1f')} "
              f"{fmt(paced['latency_max_ms'], '7.1f')} "
              f"{'yes' if fast['exact'] and paced['exact'] else 'NO':>5}")
    print("(CPU s/10k: client CPU per 10k drop records; ev/s/core: what one core of the client merges, "
          "from that CPU; wall ev/s: what it merged on this machine, sharing its cores; paced CPU: share "
          "of one core; latency: write into the node's pipe -> the renderer; exact: every record once, in "
          "order, with its node)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([{"max_rate": fast, "paced": paced} for fast, paced in rows], out, indent=1)
    return 0 if all(fast["exact"] and paced["exact"] for fast, paced in rows) else 1


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        sys.exit(main())
