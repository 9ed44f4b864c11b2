#!/usr/bin/env python3
"""Command start to first line: how long a typo'd pod takes to be reported, and how long
``drops POD`` takes to ``ready``, for today's code and for an older commit, side by side.

Issue 16 ("Start-up latency"; target: a missing pod reported in under 1 s). Run from the
repository root:

    python3 bench/startup_latency.py [--runs 7] [--base 0f16560] [--kubeconfig FILE --pod NS/POD]

The old code is ``git archive BASE`` unpacked into a temp dir (its own tree, nothing shared but
the interpreter and site-packages), the new one is this checkout. Runs alternate between the
two so that load on the machine (shared by several sessions) hits both alike; the medians and
the spread (min-max) are printed.

Typo case. Each run is a fresh ``python3 -m kubectl_bpf drops nosuchpod`` (imports,
kubeconfig, API calls are all part of what the user waits for) against a local API stand-in on
a loopback port that answers the two reads that case makes: the pod (404) and its namespace
(200). A local answer takes microseconds, so the number is the client's own cost; a real API
server adds its round trips (~1 ms on a local cluster, tens of ms across a WAN). The clock
runs from just before the spawn to the first byte on stderr, which is the error line.

Ready case (only with ``--kubeconfig`` and ``--pod``: a real cluster and a Running pod). From
the spawn to the ``ready`` record of ``-o json``: client start-up, the permission review, the
Job's pod start and the agent load. The pod start dominates; this case shows what the client's
share of it still is.

Nothing is created in the typo case; the ready case's Jobs are removed by the plugin itself
(``--duration 1s``).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from typing import Optional

REPO = pathlib.Path(__file__).resolve().parents[1]


class _StandIn(http.server.BaseHTTPRequestHandler):
    """The API server of the typo case: the namespace exists, no pod does."""

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
            body = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": parts[3]}}
            status = 200
        else:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                    "code": 404, "message": f"{parts[-1]} not found"}
            status = 404
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        """Quiet: the bench prints its own table."""


def stand_in_kubeconfig(directory: pathlib.Path, port: int) -> pathlib.Path:
    path = directory / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: bench, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: bench, user: {{token: bench}}}}]
contexts: [{{name: bench, context: {{cluster: bench, user: bench, namespace: shop}}}}]
current-context: bench
""")
    return path


def unpack(base: str, directory: pathlib.Path) -> pathlib.Path:
    """``git archive BASE`` of the repository, unpacked: the old code as it was."""
    target = directory / f"base-{base}"
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", base],
                             check=True, capture_output=True).stdout
    target.mkdir()
    archive_path = directory / "base.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    return target


def time_to_first_line(tree: pathlib.Path, argv: list[str], *, stream: str,
                       marker: Optional[str] = None, timeout_s: float = 120) -> tuple[float, str]:
    """Seconds from spawn to the first line of ``stream`` (containing ``marker`` if given)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "kubectl_bpf", *argv], cwd=tree, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    source = process.stderr if stream == "stderr" else process.stdout
    assert source is not None
    line = ""
    elapsed = float("nan")
    deadline = started + timeout_s
    for line in source:
        if marker is None or marker in line:
            elapsed = time.monotonic() - started
            break
        if time.monotonic() > deadline:
            break
    process.terminate() if marker else None
    process.communicate(timeout=timeout_s)
    return elapsed, line.strip()


def summarize(label: str, samples: list[float]) -> str:
    return (f"{label:<28} median {statistics.median(samples):6.3f} s   "
            f"min {min(samples):6.3f}   max {max(samples):6.3f}   (n={len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--base", default="0f16560", help="the old commit (default: today's first)")
    parser.add_argument("--kubeconfig", help="a real cluster, for the ready case")
    parser.add_argument("--pod", help="NS/POD of a Running pod on that cluster, for the ready case")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="kubectl-bpf-bench-") as temp:
        directory = pathlib.Path(temp)
        config = stand_in_kubeconfig(directory, server.server_address[1])
        trees = {f"old ({args.base})": unpack(args.base, directory), "new (this checkout)": REPO}
        typo: dict[str, list[float]] = {name: [] for name in trees}
        lines: dict[str, str] = {}
        for _ in range(args.runs):
            for name, tree in trees.items():
                seconds, lines[name] = time_to_first_line(
                    tree, ["drops", "nosuchpod", "--kubeconfig", str(config)], stream="stderr")
                typo[name].append(seconds)
        print(f"typo'd pod, spawn to the error line ({os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}):")
        for name in trees:
            print(f"  {summarize(name, typo[name])}")
            print(f"  {'':<28} {lines[name]}")
        if args.kubeconfig and args.pod:
            namespace, _, pod = args.pod.rpartition("/")
            ready: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(max(1, args.runs // 2)):
                for name, tree in trees.items():
                    seconds, _line = time_to_first_line(
                        tree, ["drops", pod, "-n", namespace or "default", "-o", "json", "--duration", "1s",
                               "--kubeconfig", args.kubeconfig], stream="stdout", marker='"ready"')
                    ready[name].append(seconds)
            print("drops POD, spawn to the ready record:")
            for name in trees:
                print(f"  {summarize(name, ready[name])}")
        else:
            print("ready case not run: give --kubeconfig and --pod NS/POD of a running pod")
    server.shutdown()


if __name__ == "__main__":
    main()
