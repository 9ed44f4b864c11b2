"""Handles on the real local cluster for the e2e tests: kubectl, the plugin
as a subprocess (exactly what a user runs), and waits that poll the API
with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Optional, TypeVar

REPO = pathlib.Path(__file__).resolve().parents[2]
LOCAL_CLUSTER = REPO / "hack" / "local-cluster"
JOB_NAMESPACE = "kubectl-bpf"
MANAGED = "app.kubernetes.io/managed-by=kubectl-bpf"
BUSYBOX = "localhost/kubectl-bpf/busybox:1"

T = TypeVar("T")


def cluster_env() -> dict[str, str]:
    """KUBECONFIG and PATH as ``hack/local-cluster env`` prints them."""
    output = subprocess.run([str(LOCAL_CLUSTER), "env"], check=True, capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in output.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


class Cluster:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def kubectl(self, *args: str, stdin: Optional[str] = None, check: bool = True) -> str:
        result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                                env=self.env, timeout=60, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def apply(self, manifest: str, namespace: Optional[str] = None) -> None:
        self.kubectl(*(["-n", namespace] if namespace else []), "apply", "-f", "-", stdin=manifest)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def managed_objects(self) -> list[str]:
        """Every Job and pod the plugin may have left in its namespace."""
        items = self.get_json("jobs,pods", "-n", JOB_NAMESPACE, "-l", MANAGED)["items"]
        return [f"{item['kind']}/{item['metadata']['name']}" for item in items]

    def plugin(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kubectl_bpf", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, cwd=REPO, check=False)

    def plugin_process(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "kubectl_bpf", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env, cwd=REPO)

    def pod_ip(self, namespace: str, name: str) -> str:
        return str(self.get_json("pod", "-n", namespace, name)["status"]["podIP"])

    def node_name(self) -> str:
        return str(self.get_json("nodes")["items"][0]["metadata"]["name"])


def wait_for(what: str, probe: Callable[[], Optional[T]], *, timeout_s: float, period_s: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Optional[T] = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(period_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def send_udp(address: str, port: int, count: int, *, source_port: int = 0) -> None:
    """Datagrams from this host to a pod: each to a closed port is one
    NO_SOCKET drop in the pod's netns."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", source_port))
        for _ in range(count):
            sock.sendto(b"kubectl-bpf e2e", (address, port))
