"""`kubectl bpf tcp POD` against real pods and a real enforcer (kube-router,
hack/policy-enforcer): a pod calling a working port, a closed one and one a
NetworkPolicy denies; each outcome with its pods and its kernel evidence."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import yaml

from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import SERVER
from tests.e2e.test_policy_test_live_probes import enforcer, policy_enforcer  # noqa: F401 -- fixture

OPEN_PORT, CLOSED_PORT, DENIED_PORT = 8080, 9999, 8081
# The server takes the client on 8080 and 9999 (closed: nothing listens), not on 8081.
POLICY = f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: server-from-client}}
spec:
  podSelector: {{matchLabels: {{role: server}}}}
  policyTypes: [Ingress]
  ingress:
  - from: [{{podSelector: {{matchLabels: {{role: client}}}}}}]
    ports: [{{port: {OPEN_PORT}}}, {{port: {CLOSED_PORT}}}]
"""


def read_until_ready(process: "subprocess.Popen[str]", timeout_s: float) -> None:
    assert process.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.extend(cluster_mod.records(line))
        if seen[-1]["type"] == "ready":
            return
    stderr = process.stderr.read() if process.poll() is not None and process.stderr else ""
    raise AssertionError(f"no ready record within {timeout_s}s: {seen[-3:]}; stderr: {stderr}")


def connect(cluster: cluster_mod.Cluster, namespace: str, address: str, port: int) -> None:
    """One TCP connect from the client pod (busybox nc gives up after 3 s; its wget crashes)."""
    cluster.kubectl("exec", "-n", namespace, "client", "--", "nc", "-w", "3", address, str(port),
                    stdin="", check=False)


def test_a_pods_connections_show_outcome_pods_and_evidence(
        cluster: cluster_mod.Cluster, namespace: str, policy_enforcer: None) -> None:  # noqa: F811
    offset = enforcer("log-offset")
    node = cluster.host_node()
    for name, role in (("client", "client"), ("server", "server")):
        # One node: the policy drop happens on the server's node, and evidence is the
        # drops seen on the node of the failing socket (across nodes: tests/e2e/test_across_nodes.py).
        manifest = yaml.safe_load(SERVER.format(name=name, label="role", value=role))
        manifest["spec"]["nodeName"] = node
        cluster.apply(yaml.safe_dump(manifest), namespace)
    for name in ("client", "server"):
        cluster.kubectl("wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    cluster.apply(POLICY, namespace)
    synced = ("client", "server", "server-from-client")
    enforcer("wait-sync", offset, *(f"{namespace}/{name}" for name in synced))
    server_ip = cluster.pod_ip(namespace, "server")
    process = cluster.plugin_process("tcp", "-n", namespace, "client", "-o", "json", "--duration", "25")
    try:
        read_until_ready(process, timeout_s=60)
        for port in (OPEN_PORT, CLOSED_PORT, DENIED_PORT):
            connect(cluster, namespace, server_ip, port)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = cluster_mod.records(stdout)
    rows = [r for r in lines if r["type"] == "tcp" and r["dst"] == server_ip]

    def outcome(port: int) -> dict[str, Any]:
        found = [r for r in rows if r["dport"] == port and r["direction"] == "outbound"
                 and r["event"] not in ("RESET-RECEIVED", "RETRANSMIT")]
        assert len(found) == 1, (port, "\n".join(
            f"{r['event']} {r['src']}:{r['sport']} {r['dst']}:{r['dport']} {r['direction']} "
            f"{r.get('pod')} {r.get('evidence')}" for r in lines if r["type"] == "tcp"))
        return found[0]

    for row in rows:
        assert (row["pod"], row["peer"], row["node"]) == (f"{namespace}/client", f"{namespace}/server", node)
    assert outcome(OPEN_PORT)["event"] == "CONNECTED" and outcome(OPEN_PORT)["latency_ms"] > 0
    closed = outcome(CLOSED_PORT)
    assert closed["event"] == "REFUSED" and closed["evidence"]["reason"] == "NO_SOCKET"
    denied = outcome(DENIED_PORT)
    # kube-router REJECTs (an ICMP error, so REFUSED) until its ICMP rate limit, then drops.
    assert denied["event"] in ("REFUSED", "TIMEOUT", "UNREACHABLE"), denied
    assert denied["evidence"]["reason"] == "NETFILTER_DROP" and denied["evidence"]["packet"] == "SYN"
    assert denied["evidence_node"] == node
    summary = next(r for r in lines if r["type"] == "summary")
    assert summary["seen"] == summary["events"] + summary["lost"] + summary["suppressed"]
    assert lines[-1]["type"] == "end"
