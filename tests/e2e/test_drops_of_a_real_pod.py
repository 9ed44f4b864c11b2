"""`kubectl bpf drops` against real pods: the records, the merge of several
pods, stopping with Ctrl-C, and what a dry run prints."""

from __future__ import annotations

import signal
import subprocess
import time

import yaml

from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import start_server

CLOSED_PORT = 9999


def read_until(process: "subprocess.Popen[str]", record_type: str, timeout_s: float, *,
               nodes: int = 1) -> list[dict]:
    """JSON records from a running plugin up to the first of ``record_type`` from each of
    ``nodes`` nodes (every node's agent says ``ready`` on its own: traffic sent after the
    first node's is missed by a node still loading its programs)."""
    assert process.stdout is not None
    seen: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.extend(cluster_mod.records(line))
        if seen and seen[-1]["type"] == record_type and \
                len({r.get("node") for r in seen if r["type"] == record_type}) >= nodes:
            return seen
    stderr = process.stderr.read() if process.poll() is not None and process.stderr else ""
    raise AssertionError(f"no {record_type} record within {timeout_s}s; got {[r['type'] for r in seen]}; "
                         f"stderr: {stderr}")


def test_drops_of_a_pod_show_reason_ports_direction_node_and_pod(cluster: cluster_mod.Cluster,
                                                                  namespace: str) -> None:
    server_ip = start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json", "--duration", "20")
    try:
        read_until(process, "ready", timeout_s=60)
        cluster_mod.send_udp(server_ip, CLOSED_PORT, 5, source_port=41234)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = cluster_mod.records(stdout)
    drops = [r for r in lines if r["type"] == "drop" and r["dport"] == CLOSED_PORT]
    assert len(drops) == 5, stdout
    node = cluster.pod_node(namespace, "server")
    # sent by this machine, node 1: from its pod bridge's gateway to its own pods, from its
    # InternalIP to another node's; either way the peer is named after node 1
    peer = f"node/{cluster.host_node()}"
    for drop in drops:
        assert drop["reason"] == "NO_SOCKET"
        assert drop["protocol"] == "UDP"
        assert (drop["dst"], drop["sport"]) == (server_ip, 41234)
        assert drop["direction"] == "ingress"
        assert drop["node"] == node
        assert drop["pod"] == f"{namespace}/server"
        assert drop["peer"] == peer
    summary = next(r for r in lines if r["type"] == "summary")
    assert summary["reasons"].get("NO_SOCKET", 0) >= 5
    assert summary["drops"] == summary["events"] + summary["lost"] + summary["suppressed"]
    assert summary["stopped_by"] == "duration"
    assert lines[-1]["type"] == "end"


def test_selector_targets_merge_every_pod(cluster: cluster_mod.Cluster, namespace: str) -> None:
    ips = {name: start_server(cluster, namespace, name=name, app="web") for name in ("web-a", "web-b")}
    for target in (["-l", "app=web"],):
        process = cluster.plugin_process("drops", "-n", namespace, *target, "-o", "json", "--duration", "15")
        nodes = {cluster.pod_node(namespace, name) for name in ips}
        try:
            preflight = read_until(process, "ready", timeout_s=60, nodes=len(nodes))
            for ip in ips.values():
                cluster_mod.send_udp(ip, CLOSED_PORT, 3)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 0, stderr
        jobs = {r["node"] for r in preflight if r["type"] == "preflight"}
        # one Job per node the pods landed on, carrying that node's pods
        assert jobs == nodes
        drops = [r for r in cluster_mod.records(stdout) if r["type"] == "drop" and r["dport"] == CLOSED_PORT]
        by_pod = {name: sum(1 for d in drops if d["pod"] == f"{namespace}/{name}") for name in ips}
        assert by_pod == {"web-a": 3, "web-b": 3}, drops


def test_deployment_target_traces_its_pods(cluster: cluster_mod.Cluster, namespace: str) -> None:
    cluster.kubectl("create", "deployment", "api", "-n", namespace, "--replicas=2",
                    f"--image={cluster_mod.BUSYBOX}", "--", "httpd", "-f", "-p", "8080", "-h", "/tmp")
    cluster.kubectl("rollout", "status", "-n", namespace, "deploy/api", "--timeout=60s")
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app=api")["items"]
    process = cluster.plugin_process("drops", "-n", namespace, "deploy/api", "-o", "json",
                                     "--duration", "15")
    try:
        read_until(process, "ready", timeout_s=60, nodes=len({pod["spec"]["nodeName"] for pod in pods}))
        for pod in pods:
            cluster_mod.send_udp(pod["status"]["podIP"], CLOSED_PORT, 2)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    drops = [r for r in cluster_mod.records(stdout) if r["type"] == "drop" and r["dport"] == CLOSED_PORT]
    assert sorted({d["pod"] for d in drops}) == sorted(f"{namespace}/{p['metadata']['name']}" for p in pods)


def test_ctrl_c_stops_gracefully_with_the_summary_and_removes_the_job(cluster: cluster_mod.Cluster,
                                                                      namespace: str) -> None:
    server_ip = start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "pod/server", "-o", "json")
    try:
        read_until(process, "ready", timeout_s=60)
        assert cluster.managed_objects()  # the Job runs while we trace
        cluster_mod.send_udp(server_ip, CLOSED_PORT, 4)
        time.sleep(1)  # let the drops reach the stream before the stop: they must be in the summary
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = cluster_mod.records(stdout)
    summary = next(r for r in lines if r["type"] == "summary")
    assert summary["stopped_by"] == "SIGTERM"  # the pod's termination, which Ctrl-C asks for
    assert summary["reasons"]["NO_SOCKET"] >= 4
    assert lines[-1]["type"] == "end"
    cluster_mod.wait_for("the tracer Job and pod to be gone", lambda: not cluster.managed_objects() or None,
                         timeout_s=30)


def test_table_output_shows_node_pod_columns_and_a_summary_by_reason(cluster: cluster_mod.Cluster,
                                                                     namespace: str) -> None:
    server_ip = start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "server", "--duration", "12")
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "tracing" not in process.stderr.readline():
            pass
        cluster_mod.send_udp(server_ip, CLOSED_PORT, 3)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    header = stdout.splitlines()[0].split()
    assert header[:4] == ["NODE", "POD", "TIME", "DIR"]
    rows = [line for line in stdout.splitlines() if f"{namespace}/server" in line and "NO_SOCKET" in line]
    assert len(rows) >= 3
    assert "REASON" in stdout and "COUNT" in stdout


def test_dry_run_prints_the_job_and_creates_nothing(cluster: cluster_mod.Cluster, namespace: str) -> None:
    start_server(cluster, namespace)
    result = cluster.plugin("drops", "-n", namespace, "server", "--dry-run", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    (job,) = list(yaml.safe_load_all(result.stdout))
    assert job["kind"] == "Job"
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["nodeName"] == cluster.pod_node(namespace, "server")
    assert not cluster.managed_objects()
