"""Bad input and hostile clusters: one clear line, a distinct exit code, and
no object of the plugin left in the cluster (the autouse fixture checks)."""

from __future__ import annotations

import signal
import subprocess
import time

from kubectl_bpf.protocol import exitcodes
from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import start_server
from tests.e2e.test_drops_of_a_real_pod import CLOSED_PORT, read_until


def assert_one_line_error(result: "subprocess.CompletedProcess[str]", code: int,
                          *fragments: str) -> None:
    """Progress lines may precede it; the error itself is one line, and last."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    errors = [line for line in lines if line.startswith("kubectl-bpf: error: ")]
    assert errors == lines[-1:], result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_nonexistent_pod_and_namespace_are_not_found(cluster: cluster_mod.Cluster, namespace: str) -> None:
    assert_one_line_error(cluster.plugin("drops", "-n", namespace, "nope"), exitcodes.NOT_FOUND,
                          '"nope"', namespace)
    assert_one_line_error(cluster.plugin("drops", "-n", "no-such-ns-e2e", "web"), exitcodes.NOT_FOUND,
                          "no-such-ns-e2e")
    assert_one_line_error(cluster.plugin("drops", "-n", namespace, "-l", "app=none"), exitcodes.NOT_FOUND)
    assert not cluster.managed_objects()


def test_a_pod_that_is_not_running_is_refused(cluster: cluster_mod.Cluster, namespace: str) -> None:
    cluster.apply("""
apiVersion: v1
kind: Pod
metadata: {name: pending}
spec:
  nodeSelector: {e2e/nowhere: "true"}
  containers: [{name: c, image: localhost/kubectl-bpf/busybox:1, command: [sleep, "3600"]}]
""", namespace)
    assert_one_line_error(cluster.plugin("drops", "-n", namespace, "pending"), exitcodes.TARGET_STATE,
                          "Pending")


def test_baseline_job_namespace_gives_the_fix_and_creates_nothing(cluster: cluster_mod.Cluster,
                                                                 namespace: str) -> None:
    start_server(cluster, namespace)
    jobs_namespace = f"{namespace}-jobs"
    cluster.kubectl("create", "namespace", jobs_namespace)
    try:
        cluster.kubectl("label", "namespace", jobs_namespace, "pod-security.kubernetes.io/enforce=baseline")
        result = cluster.plugin("drops", "-n", namespace, "server", "--job-namespace", jobs_namespace,
                                "--duration", "5")
        assert_one_line_error(result, exitcodes.PERMISSION, "PodSecurity",
                              "pod-security.kubernetes.io/enforce=privileged")
        assert cluster.get_json("jobs,pods", "-n", jobs_namespace)["items"] == []
    finally:
        cluster.kubectl("delete", "namespace", jobs_namespace, "--wait=false")


def test_missing_image_is_reported_within_seconds(cluster: cluster_mod.Cluster, namespace: str) -> None:
    start_server(cluster, namespace)
    started = time.monotonic()
    result = cluster.plugin("drops", "-n", namespace, "server", "--image", "localhost/kubectl-bpf/nope:0",
                            "--duration", "5")
    took = time.monotonic() - started
    assert_one_line_error(result, exitcodes.FAILURE, "localhost/kubectl-bpf/nope:0")
    assert took < 30, f"missing image reported after {took:.1f}s"


def test_killed_client_leaves_nothing_within_the_lease_and_ttl(cluster: cluster_mod.Cluster,
                                                                namespace: str) -> None:
    start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json",
                                     "--lease-ttl", "10s", "--job-ttl", "5s")
    try:
        read_until(process, "ready", timeout_s=60)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()  # reaps it and closes the pipes
    killed = time.monotonic()
    def agents_stopped() -> bool:
        pods = cluster.get_json("pods", "-n", cluster_mod.JOB_NAMESPACE, "-l", cluster_mod.MANAGED)["items"]
        return all(pod["status"]["phase"] in ("Succeeded", "Failed") for pod in pods)

    cluster_mod.wait_for("the agent to stop by itself", lambda: agents_stopped() or None, timeout_s=120)
    stopped = time.monotonic() - killed
    cluster_mod.wait_for("the Job to be deleted by its TTL", lambda: not cluster.managed_objects() or None,
                         timeout_s=60)
    gone = time.monotonic() - killed
    print(f"killed client: agent stopped after {stopped:.1f}s, job gone after {gone:.1f}s")
    gc = cluster.plugin("gc")
    assert gc.returncode == 0, gc.stderr
    assert "nothing" in gc.stdout.lower() or gc.stdout.strip() == "", gc.stdout


def test_tainted_node_is_still_traced(cluster: cluster_mod.Cluster, namespace: str) -> None:
    server_ip = start_server(cluster, namespace)
    node = cluster.pod_node(namespace, "server")
    taints = ["e2e/no-schedule=true:NoSchedule", "e2e/no-execute=true:NoExecute"]
    cluster.kubectl("taint", "node", node, *taints)
    try:
        process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json", "--duration", "10")
        try:
            read_until(process, "ready", timeout_s=60)
            cluster_mod.send_udp(server_ip, CLOSED_PORT, 2)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    finally:
        cluster.kubectl("taint", "node", node, *(taint.split("=")[0] + "-" for taint in taints))
    assert process.returncode == 0, stderr
    assert sum(1 for r in cluster_mod.records(stdout) if r["type"] == "drop") >= 2


def test_agent_runs_with_its_capability_set_not_privileged(cluster: cluster_mod.Cluster,
                                                          namespace: str) -> None:
    start_server(cluster, namespace)
    process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json", "--duration", "10")
    try:
        preflight = next(r for r in read_until(process, "ready", timeout_s=60) if r["type"] == "preflight")
        (pod,) = cluster.get_json("pods", "-n", cluster_mod.JOB_NAMESPACE, "-l", cluster_mod.MANAGED)["items"]
        process.communicate(timeout=60)
    finally:
        process.kill()
    context = pod["spec"]["containers"][0]["securityContext"]
    assert not context.get("privileged")
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "SYS_ADMIN" not in context["capabilities"]["add"]
    assert "BPF" in preflight["capabilities"] and "SYS_ADMIN" not in preflight["capabilities"]
    assert pod["spec"].get("automountServiceAccountToken") is False
