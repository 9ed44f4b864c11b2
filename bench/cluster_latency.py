#!/usr/bin/env python3
"""How long `kubectl bpf drops POD` takes to be useful on a real cluster, and what its tracer pod costs.

Issue 3 ("Measure and report") and issue 4 (time-to-ready and time-to-first-drop, median of
several runs). Run as root from the repository root, with the local cluster up
(``hack/local-cluster up``):

    python3 bench/cluster_latency.py [--runs 5] [--duration 2] [--flood-rate 20000]

Latency runs. Each run starts ``python3 -m kubectl_bpf drops -n NS server -o json --duration D``
exactly as a user would (a fresh process: imports, kubeconfig, API discovery are part of the
cost) against a busybox server pod in a scratch namespace, and from the same instant sends one
UDP datagram every 50 ms to a closed port of the pod. Every datagram is a NO_SOCKET drop in the
pod's netns, so the first drop line appears as soon as tracing works: time-to-first-drop is
bounded by readiness plus the log pipeline, not by the traffic. Timestamps are taken from the
process start (monotonic clock): the first stdout byte, the ``ready`` record, the first ``drop``
record of our port, the process exit, and the moment no Job or pod of this run is left in the
job namespace (the plugin deletes them on exit; the API is polled every 100 ms). The plugin's
stderr progress lines (job created, scheduled, container started) are timestamped too, which
splits the time to ready into client start-up, pod start and agent load (``ready.load_ms``).

Flood run. One more run under a UDP flood (default 20k datagrams/s for 8 s, from this host to
16 closed ports of the pod) samples the tracer container's cgroup every 100 ms from the host:
memory (usage, the kernel's own peak, anon RSS) and CPU (usage, CFS throttling), to compare with
the Job's requests/limits (kube/jobs.py AGENT_CPU/AGENT_MEMORY). The agent's summary then says
whether throttling cost events: ``drops == events + lost + suppressed`` with ``lost`` the ring
buffer overflows, which is where a CPU-starved agent shows up. The flooder's own count of
datagrams sent is the ground truth for NO_SOCKET drops.

Why a subprocess per run rather than calling the code: the user pays for Python start-up and
imports, and the measured number must be the one they see. Why poll the cgroup from the host:
the agent image has no shell or tools, and the kernel's counters are exact.

Everything is undone on exit (the scratch namespace is deleted; the plugin removes its Jobs).
bench/client_bench.py imports the helpers below (scratch namespace, flooder, tracer pod lookup).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Iterator, NamedTuple, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run as a script from anywhere: the plugin's own constants

from kubectl_bpf.kube import jobs as kube_jobs  # noqa: E402 -- after the path setup above
from kubectl_bpf.kube import labels as kube_labels  # noqa: E402

LOCAL_CLUSTER = os.path.join(REPO, "hack", "local-cluster")
JOB_NAMESPACE = "kubectl-bpf"
BUSYBOX = "localhost/kubectl-bpf/busybox:1"
SERVER = "server"
CLOSED_PORT = 9999  # the server listens on 8080 only: anything else is a NO_SOCKET drop
FLOOD_PORTS = 16  # CLOSED_PORT .. CLOSED_PORT+15: 16 flows, like a scan or a misconfigured client
PROBE_PERIOD_S = 0.05
API_POLL_S = 0.1
CGROUP_POLL_S = 0.1

SERVER_MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  tolerations: [{{operator: Exists}}]
  containers:
  - name: server
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"""

# A paced, counted UDP flood with sendmmsg(): Python's sendto() loop tops out well below what
# the host's receive path can take, and the bench wants the tracer, not the generator, to be
# the bottleneck. Unconnected socket: ICMP port-unreachable replies must not turn later sends
# into ECONNREFUSED. Prints {"sent":..,"errors":..,"elapsed_s":..,"rate":..}.
FLOOD_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#define BATCH 64
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s DST PORT NPORTS RATE SECONDS\n", argv[0]); return 2; }
    static struct sockaddr_in to[BATCH]; static struct mmsghdr msgs[BATCH]; struct iovec iov;
    static char payload[16] = "kubectl-bpf";
    unsigned port = (unsigned)atoi(argv[2]), nports = (unsigned)atoi(argv[3]);
    double rate = atof(argv[4]), seconds = atof(argv[5]);
    if (nports < 1) nports = 1;
    if (seconds > 300) seconds = 300;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    iov.iov_base = payload; iov.iov_len = sizeof payload;
    for (int i = 0; i < BATCH; i++) {
        to[i].sin_family = AF_INET;
        if (inet_pton(AF_INET, argv[1], &to[i].sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
        to[i].sin_port = htons((unsigned short)(port + (unsigned)i % nports));
        msgs[i].msg_hdr.msg_name = &to[i]; msgs[i].msg_hdr.msg_namelen = sizeof to[i];
        msgs[i].msg_hdr.msg_iov = &iov; msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long sent = 0, errors = 0;
    double start = now(), end = start + seconds;
    for (;;) {
        double t = now();
        if (t >= end) break;
        int n = BATCH;
        if (rate > 0) {
            double due = (t - start) * rate - (double)sent;
            if (due < 1) { struct timespec ts = {0, 200000}; nanosleep(&ts, NULL); continue; }
            if (due < n) n = (int)due;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r < 0) {
            errors++;
            if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED || errno == EINTR) continue;
            perror("sendmmsg"); break;
        }
        sent += (unsigned long long)r;
    }
    double elapsed = now() - start;
    printf("{\"sent\":%llu,\"errors\":%llu,\"elapsed_s\":%.3f,\"rate\":%.0f}\n", sent, errors, elapsed,
           elapsed > 0 ? sent / elapsed : 0.0);
    return 0;
}
"""


# -- the cluster ---------------------------------------------------------------------------------


def cluster_env() -> dict[str, str]:
    """KUBECONFIG, PATH and the CRI endpoint as ``hack/local-cluster env`` prints them: the
    plugin subprocesses must see exactly what a user who ran the eval sees."""
    output = subprocess.run([LOCAL_CLUSTER, "env"], check=True, capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in output.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


def kubectl(env: dict[str, str], *args: str, stdin: Optional[str] = None, check: bool = True) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def api(env: dict[str, str]) -> Any:
    """A CoreV1/BatchV1 pair from the same kubeconfig: polling with kubectl would add ~150 ms of
    process start-up to every sample of the cleanup time."""
    from kubernetes import client as k8s  # noqa: PLC0415 -- the plugin's own dependency
    from kubernetes import config as k8s_config  # noqa: PLC0415

    api_client = k8s_config.new_client_from_config(config_file=env["KUBECONFIG"])
    return k8s.CoreV1Api(api_client), k8s.BatchV1Api(api_client)


def agent_image() -> str:
    """The plugin's default (cli/options.py): $KUBECTL_BPF_IMAGE, else the agent of this version."""
    import kubectl_bpf  # noqa: PLC0415

    return os.environ.get("KUBECTL_BPF_IMAGE") or f"localhost/kubectl-bpf/agent:{kubectl_bpf.__version__}"


def image_id(env: dict[str, str], image: str) -> Optional[str]:
    """The image ID the node's runtime has for the agent image, "" when it has none (the target
    is "ready in under 5 s with the image present"), None when crictl cannot say. Printed with
    the results: the local cluster's image is rebuilt from the checkout by other workflows
    (hack/build-agent-image.sh), so numbers are only comparable for the same ID."""
    if shutil.which("crictl", path=env.get("PATH")) is None:
        return None
    result = subprocess.run(["crictl", "inspecti", "-o", "json", image], capture_output=True, text=True,
                            env=env, timeout=30, check=False)
    if result.returncode != 0:
        return ""
    try:
        return str(json.loads(result.stdout)["status"]["id"]).removeprefix("sha256:")[:12]
    except (ValueError, KeyError, TypeError):
        return "?"


def describe_image(env: dict[str, str]) -> str:
    image = agent_image()
    found = image_id(env, image)
    state = {None: "(crictl unavailable)", "": "ABSENT (runs include the pull)"}.get(
        found, f"present, id {found}")
    return f"agent image {image} {state}"


@contextlib.contextmanager
def scratch_namespace(env: dict[str, str], prefix: str) -> Iterator[str]:
    """A namespace of our own, deleted on every path (not waited for: its pods have a 1 s grace)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl(env, "create", "namespace", name)
    try:
        deadline = time.monotonic() + 30
        while not kubectl(env, "get", "sa", "default", "-n", name, "--ignore-not-found", check=False):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no default service account in {name}")
            time.sleep(0.2)
        yield name
    finally:
        kubectl(env, "delete", "namespace", name, "--wait=false", check=False)


def start_server(env: dict[str, str], namespace: str, name: str = SERVER) -> str:
    """The busybox HTTP server of the e2e tests; returns its pod IP."""
    kubectl(env, "apply", "-n", namespace, "-f", "-", stdin=SERVER_MANIFEST.format(name=name, image=BUSYBOX))
    kubectl(env, "wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=90s")
    return kubectl(env, "get", "pod", "-n", namespace, name, "-o", "jsonpath={.status.podIP}").strip()


def tracer_selector(namespace: str, pod: str = SERVER) -> str:
    """This bench's Jobs and pods only: other sessions may share the job namespace."""
    target = kube_labels.target_value([f"{namespace}/{pod}"])
    return f"{kube_labels.MANAGED_BY_KEY}={kube_labels.MANAGED_BY},{kube_labels.TARGET}={target}"


def managed_left(core: Any, batch: Any, selector: str) -> int:
    """Jobs plus pods of this bench's target still in the job namespace."""
    pods = core.list_namespaced_pod(JOB_NAMESPACE, label_selector=selector, _request_timeout=10).items
    found = batch.list_namespaced_job(JOB_NAMESPACE, label_selector=selector, _request_timeout=10).items
    return len(pods) + len(found)


def wait_tracer_container(core: Any, selector: str, timeout_s: float,
                          alive: Callable[[], bool]) -> Optional[tuple[str, str, str]]:
    """(pod name, pod UID, container ID) of the running tracer, once the runtime reports it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        pods = core.list_namespaced_pod(JOB_NAMESPACE, label_selector=selector, _request_timeout=10).items
        for pod in pods:
            for status in pod.status.container_statuses or []:
                if status.container_id and status.state and status.state.running:
                    container_id = status.container_id.split("://", 1)[-1]
                    return pod.metadata.name, pod.metadata.uid, container_id
        time.sleep(API_POLL_S)
    return None


# -- traffic ---------------------------------------------------------------------------------------


class Flooder:
    """The C flooder above, compiled once into a temp dir; a Python loop when there is no C
    compiler (far slower: the reported rate says what was reached)."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="kbpf-clbench-")
        self.binary: Optional[str] = None
        compiler = shutil.which("gcc") or shutil.which("cc")
        if compiler:
            source = os.path.join(self._dir, "flood.c")
            with open(source, "w", encoding="utf-8") as handle:
                handle.write(FLOOD_C)
            binary = os.path.join(self._dir, "flood")
            subprocess.run([compiler, "-O2", "-Wall", "-o", binary, source], check=True)
            self.binary = binary

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def start(self, address: str, *, rate: float, seconds: float, port: int = CLOSED_PORT,
              ports: int = FLOOD_PORTS) -> "subprocess.Popen[str]":
        """rate 0: as fast as one sender can go. Returns the process; result() reads its count."""
        if self.binary is not None:
            argv = [self.binary, address, str(port), str(ports), str(rate), str(seconds)]
        else:
            argv = [sys.executable, "-c", PY_FLOOD, address, str(port), str(ports), str(rate), str(seconds)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    @staticmethod
    def result(process: "subprocess.Popen[str]") -> dict[str, Any]:
        out, _ = process.communicate(timeout=330)
        return dict(json.loads(out.strip().splitlines()[-1]))


PY_FLOOD = r"""
import json, socket, sys, time
address, port, ports = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate, seconds = float(sys.argv[4]), float(sys.argv[5])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
targets = [(address, port + i % ports) for i in range(64)]
sent = errors = 0
start = time.monotonic(); end = start + min(seconds, 300)
while True:
    now = time.monotonic()
    if now >= end: break
    n = 64 if rate <= 0 else min(64, int((now - start) * rate - sent))
    if n < 1:
        time.sleep(0.0002); continue
    for target in targets[:n]:
        try: sock.sendto(b"kubectl-bpf", target); sent += 1
        except OSError: errors += 1
elapsed = time.monotonic() - start
result = {"sent": sent, "errors": errors, "elapsed_s": round(elapsed, 3), "rate": round(sent / elapsed)}
print(json.dumps(result))
"""


class Prober(threading.Thread):
    """One datagram to a closed port of the pod every PROBE_PERIOD_S, from the moment the
    plugin starts: the first drop line then measures readiness, not when traffic came."""

    def __init__(self, address: str, port: int = CLOSED_PORT) -> None:
        super().__init__(daemon=True)
        self._target = (address, port)
        self._halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            next_at = time.monotonic()
            while not self._halt.is_set():
                with contextlib.suppress(OSError):  # ICMP-unreachable errors: the drop happened anyway
                    sock.sendto(b"kubectl-bpf latency probe", self._target)
                    self.sent += 1
                next_at += PROBE_PERIOD_S
                self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- one plugin run ----------------------------------------------------------------------------


@dataclasses.dataclass
class RunTimes:
    """Seconds from process start (monotonic); None when it never happened."""

    first_byte: Optional[float] = None
    ready: Optional[float] = None
    first_drop: Optional[float] = None
    exit: Optional[float] = None
    clean: Optional[float] = None
    load_ms: Optional[float] = None
    # The agent's own clock (the node's wall clock, which is this host's): when the first drop
    # happened in the kernel relative to ready, and how long drop lines took to reach us.
    first_drop_after_ready_ms: Optional[float] = None
    delivery_ms: list[float] = dataclasses.field(default_factory=list)
    progress: list[tuple[float, str]] = dataclasses.field(default_factory=list)


# The plugin with other requests/limits for its tracer pod: the CLI has no flag for them (by
# design: they are the project's measured numbers), so this experiment patches the Job builder
# the session calls. Only used with --agent-cpu/--agent-memory, to see what the limits cost.
RESOURCES_WRAPPER = """
from kubectl_bpf.kube import jobs
_build_job = jobs.build_job
def build_job(request):
    job = _build_job(request)
    for container in job["spec"]["template"]["spec"]["containers"]:
        container["resources"] = {"requests": dict(__RESOURCES__), "limits": dict(__RESOURCES__)}
    return job
jobs.build_job = build_job
from kubectl_bpf.cli.root import main
main()
"""


def plugin_command(resources: Optional[tuple[str, str]]) -> list[str]:
    """How to start the plugin: ``python3 -m kubectl_bpf``, or the wrapper above."""
    if resources is None:
        return [sys.executable, "-m", "kubectl_bpf"]
    wanted = {"cpu": resources[0], "memory": resources[1]}
    return [sys.executable, "-c", RESOURCES_WRAPPER.replace("__RESOURCES__", repr(wanted))]


class PluginRun:
    """The plugin as a user runs it, its stdout parsed as it arrives (JSON lines), each record
    of interest timestamped on arrival. Counting only (never keeping every record) so that a
    flood run does not measure this reader's memory."""

    def __init__(self, env: dict[str, str], namespace: str, *, duration: float,
                 ports: range = range(CLOSED_PORT, CLOSED_PORT + 1), extra: tuple[str, ...] = (),
                 stdout_path: Optional[str] = None, resources: Optional[tuple[str, str]] = None) -> None:
        self.argv = [*plugin_command(resources), "drops", "-n", namespace, SERVER, "-o", "json",
                     "--duration", f"{duration:g}", *extra]
        self._env = env
        self._ports = ports
        self._stdout_path = stdout_path
        self.times = RunTimes()
        self.t0 = 0.0
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.drops = 0  # drop records for our ports
        self.records = 0
        self.summary: Optional[dict[str, Any]] = None
        self.end: Optional[dict[str, Any]] = None
        self.seq_gaps = 0
        self.seq_missing = 0
        self.gaps: list[tuple[int, int, str, str]] = []  # (last seq, next seq, agent time before, after)
        self._last_time = ""
        self.stderr_tail: list[str] = []
        self._threads: list[threading.Thread] = []
        self._ready = threading.Event()
        self._last_seq: dict[str, int] = {}
        self._ready_wall: Optional[float] = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        stdout: Any = subprocess.PIPE
        if self._stdout_path is not None:
            stdout = open(self._stdout_path, "wb")  # noqa: SIM115 -- closed right after the fork
        self.process = subprocess.Popen(self.argv, stdout=stdout, stderr=subprocess.PIPE, env=self._env,
                                        cwd=REPO, start_new_session=True)
        if self._stdout_path is not None:
            stdout.close()
        else:
            self._spawn(self._read_stdout)
        self._spawn(self._read_stderr)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        pending = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            if self.times.first_byte is None:
                self.times.first_byte = self.now()
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._record(line)
        if pending.strip():
            self._record(pending)

    def _record(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        self.account(record, self.now())

    def account(self, record: dict[str, Any], at: Optional[float]) -> None:
        """One record, timestamped ``at`` (None when read back from a file after the run)."""
        self.records += 1
        node = str(record.get("node"))
        seq = record.get("seq")
        if isinstance(seq, int):
            last = self._last_seq.get(node)
            if last is not None and seq > last + 1:
                self.seq_gaps += 1
                self.seq_missing += seq - last - 1
                self.gaps.append((last, seq, self._last_time, str(record.get("time", ""))))
            self._last_seq[node] = seq
            self._last_time = str(record.get("time", self._last_time))
        kind = record.get("type")
        if kind == "drop":
            if record.get("dport") in self._ports and record.get("protocol") == "UDP":
                self.drops += 1
                if at is not None:
                    happened = iso_seconds(str(record.get("time")))
                    if happened is not None:
                        self.times.delivery_ms.append((time.time() - happened) * 1000)
                    if self.times.first_drop is None:
                        self.times.first_drop = at
                        if happened is not None and self._ready_wall is not None:
                            self.times.first_drop_after_ready_ms = (happened - self._ready_wall) * 1000
        elif kind == "ready":
            self.times.ready = at
            self.times.load_ms = record.get("load_ms")
            self._ready_wall = iso_seconds(str(record.get("time")))
            self._ready.set()
        elif kind == "summary":
            self.summary = record
        elif kind == "end":
            self.end = record

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            text = raw.decode("utf-8", "replace").rstrip()
            self.times.progress.append((self.now(), text))
            self.stderr_tail = [*self.stderr_tail, text][-10:]

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._ready.wait(0.1):
                return True
            if self.process is not None and self.process.poll() is not None:
                return self._ready.is_set()
        return False

    def wait_ready_in_file(self, timeout_s: float) -> bool:
        """With stdout in a file, ready is seen by reading the file (still small at that point)."""
        assert self._stdout_path is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self._stdout_path, "rb") as handle:
                if b'"type":"ready"' in handle.read(1 << 20):
                    return True
            if self.process is not None and self.process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(2)  # Ctrl-C: the plugin stops its Jobs
            code = self.process.wait(30)
        self.times.exit = self.now()
        for thread in self._threads:
            thread.join(10)
        if self._stdout_path is not None:
            self.read_back()
        return code

    def read_back(self) -> None:
        """Counts from the stdout file, once the run is over (no arrival times there)."""
        assert self._stdout_path is not None
        with open(self._stdout_path, "rb") as handle:
            for line in handle:
                with contextlib.suppress(ValueError):
                    self.account(json.loads(line), None)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def iso_seconds(text: str) -> Optional[float]:
    """Epoch seconds of the agent's ISO times (``2026-11-24T21:30:47.112020Z``)."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def progress_time(times: RunTimes, *needles: str) -> Optional[float]:
    """When the first stderr progress line containing every needle came (job created, ...)."""
    for at, text in times.progress:
        if all(needle in text for needle in needles):
            return at
    return None


# -- the tracer's cgroup ---------------------------------------------------------------------------


def read_int(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_kv(path: str) -> dict[str, int]:
    try:
        with open(path, encoding="ascii") as handle:
            pairs = (line.split() for line in handle)
            return {fields[0]: int(fields[1]) for fields in pairs if len(fields) == 2}
    except (OSError, ValueError):
        return {}


class Sample(NamedTuple):
    at: float  # on the sampler's clock
    cpu_ns: int  # cumulative, since the container began
    usage: int  # bytes charged to the cgroup
    throttled: int  # CFS periods throttled, cumulative
    anon: int  # anonymous bytes: the agent's heap


def pick(values: dict[str, int], *keys: str) -> dict[str, int]:
    return {key: values[key] for key in keys if key in values}


class CgroupSampler(threading.Thread):
    """Polls the tracer container's cgroup (v1 or v2, cgroupfs or systemd layout) until it is
    gone, keeping peaks and the last counters: the container's cgroup is removed with it, so
    the numbers must be read while it runs."""

    def __init__(self, pod_uid: str, container_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(daemon=True)
        self._clock = clock
        self.dirs = self._find(pod_uid, container_id)
        self._halt = threading.Event()
        self.samples = 0
        self.peak_usage = 0  # what the memory limit is compared with (anon + page cache + kernel)
        self.kernel_peak = 0  # max_usage_in_bytes (v1) / memory.peak (v2): the kernel's own peak
        self.peak_anon = 0  # anonymous memory: the agent's heap, what cannot be reclaimed
        self.cpu_ns_first: Optional[int] = None
        self.cpu_ns_last: Optional[int] = None
        self.throttle_first: dict[str, int] = {}
        self.throttle_last: dict[str, int] = {}
        self.failcnt: Optional[int] = None
        self.limit_bytes: Optional[int] = None
        self.quota: Optional[str] = None
        self.timeline: list[Sample] = []

    @staticmethod
    def _find(pod_uid: str, container_id: str) -> dict[str, str]:
        found: dict[str, str] = {}
        uid_forms = {pod_uid, pod_uid.replace("-", "_")}  # systemd driver: pod<uid with _>.slice
        for controller in ("memory", "cpu", "cpuacct", "unified", ""):
            root = os.path.join("/sys/fs/cgroup", controller) if controller else "/sys/fs/cgroup"
            for uid in uid_forms:
                pattern = os.path.join(root, "**", f"*pod{uid}*", f"*{container_id}*")
                matches = [path for path in glob.glob(pattern, recursive=True) if os.path.isdir(path)]
                if matches:
                    found[controller or "v2"] = matches[0]
                    break
        return found

    @property
    def v2(self) -> bool:
        path = self.dirs.get("v2") or self.dirs.get("unified")
        return path is not None and os.path.exists(os.path.join(path, "memory.current"))

    def run(self) -> None:
        while not self._halt.is_set():
            if not self._sample(self._clock()):
                return
            self._halt.wait(CGROUP_POLL_S)

    def _sample(self, at: float) -> bool:
        if self.v2:
            base = self.dirs.get("v2") or self.dirs["unified"]
            usage = read_int(os.path.join(base, "memory.current"))
            peak = read_int(os.path.join(base, "memory.peak"))
            anon = read_kv(os.path.join(base, "memory.stat")).get("anon")
            cpu_stat = read_kv(os.path.join(base, "cpu.stat"))
            cpu_ns = cpu_stat["usage_usec"] * 1000 if "usage_usec" in cpu_stat else None
            throttle = pick(cpu_stat, "nr_periods", "nr_throttled", "throttled_usec")
            limit_text = _read_text(os.path.join(base, "memory.max"))
            limit = int(limit_text) if limit_text and limit_text.isdigit() else None
            quota = _read_text(os.path.join(base, "cpu.max")) or "-"
            failcnt = read_kv(os.path.join(base, "memory.events")).get("max")
        else:
            memory, cpu = self.dirs.get("memory", ""), self.dirs.get("cpu", "")
            cpuacct = self.dirs.get("cpuacct", cpu)
            usage = read_int(os.path.join(memory, "memory.usage_in_bytes"))
            peak = read_int(os.path.join(memory, "memory.max_usage_in_bytes"))
            stat = read_kv(os.path.join(memory, "memory.stat"))
            anon = stat.get("total_rss", stat.get("rss"))
            cpu_ns = read_int(os.path.join(cpuacct, "cpuacct.usage"))
            cpu_stat = read_kv(os.path.join(cpu, "cpu.stat"))
            throttle = pick(cpu_stat, "nr_periods", "nr_throttled", "throttled_time")
            failcnt = read_int(os.path.join(memory, "memory.failcnt"))
            limit = read_int(os.path.join(memory, "memory.limit_in_bytes"))
            period = read_int(os.path.join(cpu, "cpu.cfs_period_us"))
            quota = f"{read_int(os.path.join(cpu, 'cpu.cfs_quota_us'))}/{period} us"
        if usage is None or cpu_ns is None:
            return False  # the container (and its cgroup) is gone
        self.samples += 1
        self.failcnt, self.limit_bytes, self.quota = failcnt, limit, quota
        self.peak_usage = max(self.peak_usage, usage)
        self.kernel_peak = max(self.kernel_peak, peak or 0)
        self.peak_anon = max(self.peak_anon, anon or 0)
        if self.cpu_ns_first is None:
            self.cpu_ns_first, self.throttle_first = cpu_ns, throttle
        self.cpu_ns_last, self.throttle_last = cpu_ns, throttle
        self.timeline.append(Sample(at, cpu_ns, usage, throttle.get("nr_throttled", 0), anon or 0))
        return True

    def stop_sampling(self) -> None:
        self._halt.set()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)

    def max_cores(self, window_s: float = 1.0) -> float:
        """The highest CPU use over any ``window_s``: the flood's plateau, not the run average."""
        best = 0.0
        for i, first in enumerate(self.timeline):
            for sample in self.timeline[i + 1:]:
                if sample.at - first.at >= window_s:
                    best = max(best, (sample.cpu_ns - first.cpu_ns) / 1e9 / (sample.at - first.at))
                    break
        return best

    def at(self, moment: Optional[float]) -> Optional[Sample]:
        """The first sample at or after ``moment`` (cumulative counters since the container began)."""
        if moment is None:
            return None
        return next((sample for sample in self.timeline if sample.at >= moment), None)

    def throttled(self) -> tuple[int, int, float]:
        """(periods, throttled periods, throttled seconds) while sampled."""
        first, last = self.throttle_first, self.throttle_last
        periods = last.get("nr_periods", 0) - first.get("nr_periods", 0)
        count = last.get("nr_throttled", 0) - first.get("nr_throttled", 0)
        if "throttled_usec" in last:
            seconds = (last["throttled_usec"] - first.get("throttled_usec", 0)) / 1e6
        else:
            seconds = (last.get("throttled_time", 0) - first.get("throttled_time", 0)) / 1e9
        return periods, count, seconds


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def quantity_bytes(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * factor)
    return int(text)


def quantity_cores(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


class LogDirWatch(threading.Thread):
    """Lists the tracer container's log directory (kubelet podLogsDir) every 0.2 s, to see log
    rotations happen: 0.log renamed to 0.log.<time>, older ones gzipped, beyond maxFiles removed."""

    def __init__(self, logs_root: str, pod_uid: str) -> None:
        super().__init__(daemon=True)
        self._root = logs_root
        self._uid = pod_uid
        self._halt = threading.Event()
        self.seen: dict[str, float] = {}  # file name -> when first seen
        self.max_bytes = 0

    def run(self) -> None:
        directory = None
        while not self._halt.is_set():
            if directory is None:
                with contextlib.suppress(OSError):
                    directory = next((os.path.join(self._root, name, "agent")
                                      for name in os.listdir(self._root) if name.endswith("_" + self._uid)),
                                     None)
            if directory is not None:
                with contextlib.suppress(OSError):
                    for name in os.listdir(directory):
                        self.seen.setdefault(name, time.time())
                        with contextlib.suppress(OSError):
                            size = os.path.getsize(os.path.join(directory, name))
                            self.max_bytes = max(self.max_bytes, size)
            self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    @property
    def rotations(self) -> list[str]:
        return sorted(name for name in self.seen if not name.endswith(".log") and ".log." in name)


def kubelet_setting(key: str) -> Optional[str]:
    """A top-level scalar of the local cluster's kubelet config, None when not set."""
    path = os.path.join(os.environ.get("LOCAL_CLUSTER_DIR", "/var/lib/kubectl-bpf-cluster"),
                        "kubelet-config.yaml")
    with contextlib.suppress(OSError), open(path, encoding="utf-8") as handle:
        for text in handle:
            name, _, value = text.partition(":")
            if name == key:  # top level only: nested keys are indented
                return value.strip().strip('"')
    return None


def kubelet_log_settings() -> tuple[str, str]:
    """containerLogMaxSize/MaxFiles (the kubelet's defaults when unset): when it rotates."""
    return (kubelet_setting("containerLogMaxSize") or "10Mi (default, not set)",
            kubelet_setting("containerLogMaxFiles") or "5 (default, not set)")


def pod_logs_root() -> str:
    return kubelet_setting("podLogsDir") or "/var/log/pods"


def growth_line(sampler: CgroupSampler, flood_start: float, events: int) -> str:
    """How much the agent's heap grew from the flood's start, per event streamed: a bounded
    agent grows by its batch (a few MiB) and stays flat; growth in proportion to the events is a
    leak (see gadgets/drops/node.py Decoder._ifnames in bench/README.md)."""
    first = sampler.at(flood_start)
    if first is None or not sampler.timeline or not events:
        return "  heap growth: (not sampled)"
    peak = max(sample.anon for sample in sampler.timeline if sample.at >= first.at)  # the last samples
    grown = peak - first.anon  # are the process exiting: its heap already freed
    return (f"  heap growth: anon {mib(first.anon)} at the flood's start, at most {mib(peak)} after "
            f"(+{mib(grown)}, {grown / events:.0f} bytes per event streamed; a bounded agent stays flat)")


def describe_log_loss(run: PluginRun, logs: Optional[LogDirWatch]) -> list[str]:
    """The container log's rotations during the run, and each seq gap the client's output has."""
    lines = []
    if logs is not None:
        lines.append(f"  container log: {len(logs.rotations)} rotations "
                     f"({', '.join(logs.rotations) or '-'}); largest file seen {mib(logs.max_bytes)}")
    for last, following, before, after in run.gaps[:10]:
        lines.append(f"  gap: after seq {last} ({before}) next seq {following} ({after}): "
                     f"{following - last - 1} records never reached the client")
    return lines


# -- reporting -------------------------------------------------------------------------------------


def stats_row(name: str, values: list[Optional[float]], scale: float = 1.0, digits: int = 2) -> str:
    present = [value * scale for value in values if value is not None]
    missing = len(values) - len(present)
    if not present:
        return f"{name:<40} {'-':>8} {'-':>8} {'-':>8}   (never, {missing}/{len(values)} runs)"
    note = f"   ({missing} runs without)" if missing else ""
    return (f"{name:<40} {statistics.median(present):>8.{digits}f} {min(present):>8.{digits}f} "
            f"{max(present):>8.{digits}f}{note}")


def mib(value: float) -> str:
    return f"{value / (1 << 20):.1f} MiB"


def since(base: Optional[float], value: Optional[float]) -> Optional[float]:
    return None if base is None or value is None else value - base


# -- the benchmark ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a bench runs: the cluster, the scratch server pod, this bench's tracer selector."""

    env: dict[str, str]
    namespace: str
    address: str
    core: Any
    batch: Any
    selector: str
    resources: Optional[tuple[str, str]] = None  # --agent-cpu/--agent-memory experiment


class TracerWatch(threading.Thread):
    """Finds the run's tracer container as soon as the API reports it running, then samples its
    cgroup on the run's clock: CPU used up to ``ready`` and the throttling during start-up."""

    def __init__(self, target: Target, run: PluginRun) -> None:
        super().__init__(daemon=True)
        self._target = target
        self._run = run
        self.sampler: Optional[CgroupSampler] = None

    def run(self) -> None:
        process = self._run.process
        found = wait_tracer_container(self._target.core, self._target.selector, 90,
                                      lambda: process is not None and process.poll() is None)
        if found is None:
            return
        sampler = CgroupSampler(found[1], found[2], clock=self._run.now)
        if sampler.dirs:
            self.sampler = sampler
            sampler.run()  # on this thread, until the cgroup is gone

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop_sampling()
        self.join(10)


def latency_run(target: Target, duration: float) -> tuple[RunTimes, int, PluginRun, Optional[CgroupSampler]]:
    prober = Prober(target.address)
    run = PluginRun(target.env, target.namespace, duration=duration, resources=target.resources)
    run.start()
    prober.start()
    watch = TracerWatch(target, run)
    watch.start()
    try:
        code = run.wait(duration + 120)
    finally:
        prober.stop()
        run.kill()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if managed_left(target.core, target.batch, target.selector) == 0:
            run.times.clean = run.now()
            break
        time.sleep(API_POLL_S)
    watch.stop()
    return run.times, code, run, watch.sampler


def flood_run(target: Target, flooder: Flooder, *, rate: float, seconds: float) -> dict[str, Any]:
    """One run under a flood, the tracer's cgroup sampled throughout."""
    duration = seconds + 6
    with tempfile.NamedTemporaryFile(prefix="kbpf-latency-", suffix=".jsonl",
                                     dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as out:
        run = PluginRun(target.env, target.namespace, duration=duration, stdout_path=out.name,
                        ports=range(CLOSED_PORT, CLOSED_PORT + FLOOD_PORTS), resources=target.resources)
        run.start()
        sampler: Optional[CgroupSampler] = None
        logs: Optional[LogDirWatch] = None
        flood: Optional[subprocess.Popen[str]] = None
        try:
            tracer = wait_tracer_container(target.core, target.selector, 90,
                                           lambda: run.process is not None and run.process.poll() is None)
            if tracer is None:
                raise RuntimeError("the tracer pod never ran: " + " | ".join(run.stderr_tail))
            sampler = CgroupSampler(tracer[1], tracer[2], clock=run.now)
            if not sampler.dirs:
                raise RuntimeError(f"no cgroup found for pod {tracer[1]} container {tracer[2]}")
            sampler.start()
            logs = LogDirWatch(pod_logs_root(), tracer[1])
            logs.start()
            if not run.wait_ready_in_file(60):
                raise RuntimeError("no ready record: " + " | ".join(run.stderr_tail))
            time.sleep(1.0)  # an idle baseline for the memory curve
            flood_start = run.now()
            flood = flooder.start(target.address, rate=rate, seconds=seconds)
            flood_result = Flooder.result(flood)
            flood_end = run.now()
            code = run.wait(duration + 120)
        finally:
            if flood is not None and flood.poll() is None:
                flood.kill()
            run.kill()
            if sampler is not None:
                sampler.stop()
            if logs is not None:
                logs.stop()
    return {"run": run, "code": code, "sampler": sampler, "flood": flood_result, "logs": logs,
            "window": (flood_start, flood_end)}


def report_flood(result: dict[str, Any], rate: float) -> list[str]:
    run: PluginRun = result["run"]
    sampler: CgroupSampler = result["sampler"]
    flood = result["flood"]
    summary = run.summary or {}
    reasons = summary.get("reasons") or {}
    periods, throttled, throttled_s = sampler.throttled()
    cpu_s = ((sampler.cpu_ns_last or 0) - (sampler.cpu_ns_first or 0)) / 1e9
    limit_mem = quantity_bytes(kube_jobs.AGENT_MEMORY)
    limit_cpu = quantity_cores(kube_jobs.AGENT_CPU)
    events = int(summary.get("events") or 0)
    if not summary:
        return ["", f"Tracer pod under a flood of {flood['rate']:.0f}/s: NO SUMMARY, the agent did not "
                "finish: " + " | ".join(run.stderr_tail[-3:]),
                f"  memory: kernel peak {mib(sampler.kernel_peak)} of {mib(sampler.limit_bytes or 0)}, anon "
                f"{mib(sampler.peak_anon)}; failcnt {sampler.failcnt}",
                *describe_log_loss(run, result["logs"])]
    lines = [
        "",
        f"Tracer pod under a flood: {flood['sent']} datagrams at {flood['rate']:.0f}/s for "
        f"{flood['elapsed_s']:.1f} s (asked {rate:.0f}/s{', i.e. as fast as it goes' if not rate else ''}), "
        f"from this host to {FLOOD_PORTS} closed ports",
        f"  cgroup: {', '.join(f'{k}={v}' for k, v in sorted(sampler.dirs.items()))}",
        f"  Job requests = limits: cpu {kube_jobs.AGENT_CPU}, memory {kube_jobs.AGENT_MEMORY} "
        f"(cgroup limit {mib(sampler.limit_bytes or 0)}, cpu quota/period {sampler.quota})",
        f"  memory: peak usage {mib(sampler.peak_usage)} sampled, kernel peak {mib(sampler.kernel_peak)} "
        f"({100 * sampler.kernel_peak / limit_mem:.0f}% of the limit), peak anon (RSS) "
        f"{mib(sampler.peak_anon)}; failcnt {sampler.failcnt}",
        growth_line(sampler, result["window"][0], events),
        f"  cpu: {cpu_s:.2f} s over {len(sampler.timeline) * CGROUP_POLL_S:.1f} s sampled; busiest 1 s "
        f"{sampler.max_cores():.3f} cores ({100 * sampler.max_cores() / limit_cpu:.0f}% of the limit); "
        f"throttled in {throttled}/{periods} CFS periods, {throttled_s:.2f} s",
        f"  agent summary: drops {summary.get('drops')} = events {summary.get('events')} + lost "
        f"{summary.get('lost')} + suppressed {summary.get('suppressed')}; unaccounted "
        f"{summary.get('unaccounted')}, missed {summary.get('missed')}; NO_SOCKET {reasons.get('NO_SOCKET')} "
        f"(flooder sent {flood['sent']})",
        f"  client: {run.drops} flood drop lines, {run.records} records, seq gaps {run.seq_gaps} "
        f"({run.seq_missing} records missing), exit {result['code']}, end {(run.end or {}).get('status')}",
        *describe_log_loss(run, result["logs"]),
    ]
    if summary:
        lost = int(summary.get("lost") or 0)
        lines.append(f"  verdict: {'events LOST under throttling' if lost else 'no event lost'} "
                     f"({lost} lost = {100 * lost / max(1, int(summary.get('drops') or 0)):.1f}% of drops); "
                     f"{events} streamed = {events / max(1e-9, float(summary.get('duration_s') or 1)):.0f}/s "
                     "averaged over the run")
    else:
        lines.append("  verdict: NO SUMMARY from the agent; stderr: " + " | ".join(run.stderr_tail))
    return lines


def print_latency(runs: list[RunTimes], samplers: list[Optional[CgroupSampler]], duration: float) -> None:
    print(f"\n{'seconds from process start':<40} {'median':>8} {'min':>8} {'max':>8}   (n={len(runs)})")
    rows = [
        ("job created (stderr)", [progress_time(t, "job", "created") for t in runs]),
        ("pod scheduled (stderr)", [progress_time(t, "scheduled") for t in runs]),
        ("container started (stderr)", [progress_time(t, "container started") for t in runs]),
        ("first stdout byte", [t.first_byte for t in runs]),
        ("ready record", [t.ready for t in runs]),
        ("first drop record", [t.first_drop for t in runs]),
        (f"process exit (--duration {duration:g} included)", [t.exit for t in runs]),
        ("no Job/pod left in kubectl-bpf", [t.clean for t in runs]),
        ("exit -> nothing left", [since(t.exit, t.clean) for t in runs]),
        ("container started -> ready", [since(progress_time(t, "container started"), t.ready) for t in runs]),
    ]
    for name, values in rows:
        print(stats_row(name, values))
    print(f"\n{'milliseconds':<40} {'median':>8} {'min':>8} {'max':>8}")
    at_ready = [sampler.at(t.ready) if sampler else None for t, sampler in zip(runs, samplers)]
    rows = [
        ("ready -> first drop record", [since(t.ready, t.first_drop) for t in runs]),
        ("agent ready.load_ms", [t.load_ms / 1000 if t.load_ms is not None else None for t in runs]),
        ("first drop kernel time - ready.time", [ms_to_s(t.first_drop_after_ready_ms) for t in runs]),
        ("drop delivery kernel -> stdout, p50",
         [ms_to_s(statistics.median(t.delivery_ms)) if t.delivery_ms else None for t in runs]),
        ("drop delivery kernel -> stdout, max", [ms_to_s(max(t.delivery_ms, default=None)) for t in runs]),
        ("tracer CPU time until ready", [sample.cpu_ns / 1e9 if sample else None for sample in at_ready]),
        ("tracer CPU time, whole run",
         [sampler.cpu_ns_last / 1e9 if sampler and sampler.cpu_ns_last else None for sampler in samplers]),
    ]
    for name, values in rows:
        print(stats_row(name, values, 1000, 0))
    throttled = [float(sample.throttled) if sample else None for sample in at_ready]
    print(stats_row("tracer CFS periods throttled until ready", throttled, 1, 0))
    readies = [t.ready for t in runs if t.ready is not None]
    verdict = "PASS" if readies and statistics.median(readies) < 5 else "FAIL"
    print(f"\ntarget: ready in under 5 s with the image present: median "
          f"{statistics.median(readies) if readies else float('nan'):.2f} s -> {verdict}"
          f" (max {max(readies) if readies else float('nan'):.2f} s)")


def wait_gone(target: Target, timeout_s: float = 60) -> None:
    """One tracer at a time: the next run must not share the CPUs with a terminating one."""
    deadline = time.monotonic() + timeout_s
    while managed_left(target.core, target.batch, target.selector) and time.monotonic() < deadline:
        time.sleep(API_POLL_S)


def ms_to_s(value: Optional[float]) -> Optional[float]:
    return None if value is None else value / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="latency runs (the median is reported)")
    parser.add_argument("--duration", type=float, default=2.0, help="--duration of each latency run, s")
    parser.add_argument("--flood-rates", default="20000,0", help="datagrams/s of each cgroup run, comma "
                        "separated (0: as fast as this host sends; empty: no flood run)")
    parser.add_argument("--flood-seconds", type=float, default=8.0)
    parser.add_argument("--agent-cpu", metavar="QTY", help="experiment: the tracer pod's cpu request=limit "
                        f"instead of {kube_jobs.AGENT_CPU}")
    parser.add_argument("--agent-memory", metavar="QTY", help="experiment: its memory request=limit "
                        f"instead of {kube_jobs.AGENT_MEMORY}")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("cluster_latency: run as root (the tracer's cgroup is read from the host)", file=sys.stderr)
        return 2
    resources = None
    if args.agent_cpu or args.agent_memory:
        resources = (args.agent_cpu or kube_jobs.AGENT_CPU, args.agent_memory or kube_jobs.AGENT_MEMORY)
    env = cluster_env()
    core, batch = api(env)
    print(f"cluster: KUBECONFIG={env['KUBECONFIG']}; {describe_image(env)}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}"
          + (f"; EXPERIMENT: tracer resources cpu={resources[0]} memory={resources[1]}" if resources else ""))
    flooder = Flooder()
    try:
        with scratch_namespace(env, "kbpf-lat") as namespace:
            target = Target(env=env, namespace=namespace, address=start_server(env, namespace), core=core,
                            batch=batch, selector=tracer_selector(namespace), resources=resources)
            print(f"server pod {namespace}/{SERVER} at {target.address}; {args.runs} runs of "
                  f"drops -o json --duration {args.duration:g}, a datagram to UDP {CLOSED_PORT} every "
                  f"{PROBE_PERIOD_S * 1000:.0f} ms from process start\n")
            runs: list[RunTimes] = []
            samplers: list[Optional[CgroupSampler]] = []
            for index in range(args.runs):
                times, code, run, sampler = latency_run(target, args.duration)
                runs.append(times)
                samplers.append(sampler)
                print(f"run {index + 1}: exit {code}  first byte {times.first_byte or 0:.2f}s  ready "
                      f"{times.ready or 0:.2f}s  first drop {times.first_drop or 0:.2f}s  exit "
                      f"{times.exit or 0:.2f}s  nothing left {times.clean or 0:.2f}s  load_ms {times.load_ms}"
                      + ("" if code == 0 else "  stderr: " + " | ".join(run.stderr_tail)), flush=True)
            print_latency(runs, samplers, args.duration)
            flood_lines: list[str] = []
            for rate in [float(text) for text in args.flood_rates.split(",") if text.strip()]:
                result = flood_run(target, flooder, rate=rate, seconds=args.flood_seconds)
                lines = report_flood(result, rate)
                print("\n".join(lines), flush=True)
                flood_lines += lines
                wait_gone(target)
            if args.json:
                with open(args.json, "w", encoding="utf-8") as handle:
                    json.dump({"runs": [dataclasses.asdict(t) for t in runs], "flood": flood_lines}, handle,
                              indent=1)
    finally:
        flooder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
