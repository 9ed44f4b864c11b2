"""Handles on the real local cluster for the e2e tests: kubectl, the plugin
as a subprocess (exactly what a user runs), and waits that poll the API
with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Optional, TypeVar

from hack.localcluster import topology

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
    env["PYTHONFAULTHANDLER"] = "1"  # a plugin that crashes (SIGABRT, SIGSEGV) shows its threads' stacks
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

    def pod_node(self, namespace: str, name: str) -> str:
        """The node a pod was scheduled to: where its drops are seen and its Job runs."""
        return str(self.get_json("pod", "-n", namespace, name)["spec"]["nodeName"])

    def node_ips(self) -> dict[str, str]:
        """Node name -> InternalIP, for every node."""
        return {node["metadata"]["name"]: address["address"] for node in self.get_json("nodes")["items"]
                for address in node["status"].get("addresses", []) if address["type"] == "InternalIP"}

    def host_node(self) -> str:
        """Node 1: this machine's own network namespace (the others are simulated nodes)."""
        (name,) = [node for node in self.node_ips() if self.node_netns(node) is None]
        return name

    def node_netns(self, node: str) -> Optional[str]:
        """The network namespace a simulated node's kubelet runs in (node K has IP NODE_NET.K
        and netns kbpf-nodeK, hack/localcluster/topology.py); None for node 1, the host's."""
        address = ipaddress.ip_address(self.node_ips()[node])
        network = ipaddress.ip_network(topology.NODE_NET)
        if address not in network:
            return None
        return f"kbpf-node{int(address) - int(network.network_address)}"

    def runtime_endpoint(self, node: str) -> str:
        """The CRI socket of a node's own containerd (hack/lib/nodes.sh), for crictl."""
        netns = self.node_netns(node)
        if netns is None:
            return self.env["CONTAINER_RUNTIME_ENDPOINT"]
        state = pathlib.Path(self.env["KUBECONFIG"]).parent
        return f"unix://{state}/nodes/{netns.removeprefix('kbpf-')}/containerd/containerd.sock"

    def container_pid(self, namespace: str, pod: str) -> str:
        """The host PID of a running pod's first container, found through its node's containerd
        (nsenter into it reaches the pod's namespaces without exec and without touching the pod)."""
        endpoint = self.runtime_endpoint(self.pod_node(namespace, pod))
        crictl = ["crictl", "--runtime-endpoint", endpoint, "--image-endpoint", endpoint]
        container = subprocess.run(
            [*crictl, "ps", "--label", f"io.kubernetes.pod.namespace={namespace}", "--label",
             f"io.kubernetes.pod.name={pod}", "--state", "running", "-q"],
            capture_output=True, text=True, check=True, env=self.env).stdout.split()[0]
        return subprocess.run([*crictl, "inspect", "--output", "go-template", "--template", "{{.info.pid}}",
                               container], capture_output=True, text=True, check=True,
                              env=self.env).stdout.strip()


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
    NO_SOCKET drop in the pod's netns. Their source is a node-1 address: the
    pod bridge's gateway for its own pods, its InternalIP for the others'."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", source_port))
        for _ in range(count):
            sock.sendto(b"kubectl-bpf e2e", (address, port))


def send_udp_from_netns(netns: str, address: str, port: int, count: int) -> None:
    """send_udp from inside a simulated node's network namespace (a process of that node, as
    its kubelet's probes are: from the gateway address of the node's pod bridge)."""
    script = ("import socket, sys\n"
              "address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
              "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
              "    for _ in range(count): s.sendto(b'kubectl-bpf e2e', (address, port))\n")
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", script, address, str(port),
                    str(count)], check=True, timeout=30)
