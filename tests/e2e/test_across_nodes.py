"""On a cluster of several nodes (`hack/local-cluster up --nodes 3`): a drop across nodes is
attributed to the right pod and node (and a node's own address is named after it), a deny
across nodes is explained at the destination node, a pod resolves a Service name through
CoreDNS, a Service without endpoints is refused by kube-proxy, and a node whose tracer cannot
start is reported while the other node streams. Each test's namespace goes with it and the
plugin leaves nothing (conftest's _nothing_left_behind).

The multinode tier: run with --with-multinode on a cluster of >= 3 nodes (it fails, never
skips, on fewer); CI (`make test`) brings up 3 nodes and runs it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

import kubectl_bpf
from kubectl_bpf.gadgets.policy_test import exitcodes as policy_exitcodes
from kubectl_bpf.protocol import exitcodes
from tests.e2e import cluster as cluster_mod
from tests.e2e.test_drops_of_a_real_pod import read_until

pytestmark = [pytest.mark.e2e, pytest.mark.multinode]

BUSYBOX = "localhost/kubectl-bpf/busybox:1"
CLOSED_PORT = 9999


def workers(cluster: cluster_mod.Cluster) -> list[str]:
    """The simulated nodes (2..N), Ready; the tier needs two of them."""
    names = [n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    others = sorted(n for n in names if "-node" in n)
    assert len(others) >= 2, f"the multinode tier needs hack/local-cluster up --nodes 3; nodes: {names}"
    return others


def pod_on(cluster: cluster_mod.Cluster, namespace: str, name: str, node: str, command: str) -> str:
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers: [{{name: c, image: {BUSYBOX}, imagePullPolicy: Never, command: [sh, -c, "{command}"]}}]
""", namespace)
    cluster.kubectl("wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    return cluster.pod_ip(namespace, name)


def in_pod(cluster: cluster_mod.Cluster, namespace: str, pod: str,
           script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "exec", "-n", namespace, pod, "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False, env=cluster.env)


def test_a_drop_across_nodes_is_reported_once_by_the_destination_node(
        cluster: cluster_mod.Cluster, namespace: str) -> None:
    client_node, server_node = workers(cluster)[:2]
    server_ip = pod_on(cluster, namespace, "server", server_node, "exec httpd -f -p 8080 -h /tmp")
    pod_on(cluster, namespace, "client", client_node, "exec sleep 3600")
    process = cluster.plugin_process("drops", "-n", namespace, "server", "-o", "json", "--duration", "20")
    try:
        preflight = read_until(process, "ready", timeout_s=90)
        # busybox nc has no UDP: a SYN to a closed TCP port is one NO_SOCKET drop too
        sent = in_pod(cluster, namespace, "client",
                      f"for i in 1 2 3 4 5; do nc -w 1 {server_ip} {CLOSED_PORT} </dev/null; done; echo sent")
        # the server's node itself (its pod bridge's gateway, where its kubelet's probes come from)
        netns = cluster.node_netns(server_node)
        assert netns is not None
        cluster_mod.send_udp_from_netns(netns, server_ip, CLOSED_PORT, 2)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        process.kill()
    assert process.returncode == 0, stderr + sent.stderr
    assert sent.stdout.strip().endswith("sent"), sent.stdout + sent.stderr
    assert {r["node"] for r in preflight if r["type"] == "preflight"} == {server_node}
    client_ip = cluster.pod_ip(namespace, "client")
    drops = [r for r in cluster_mod.records(stdout) if r["type"] == "drop" and r.get("dport") == CLOSED_PORT]
    syns = [d for d in drops if d["protocol"] == "TCP"]
    assert len(syns) == 5, stdout  # each SYN once: no node reports another's drop
    for drop in syns:
        assert (drop["reason"], drop["node"]) == ("NO_SOCKET", server_node)
        assert drop["pod"] == f"{namespace}/server"
        assert (drop["src"], drop["dst"], drop["peer"]) == (client_ip, server_ip, f"{namespace}/client")
    from_node = [d for d in drops if d["protocol"] == "UDP"]
    assert len(from_node) == 2, stdout
    gateway = next(n for n in cluster.get_json("nodes")["items"] if n["metadata"]["name"] == server_node)
    assert gateway["spec"]["podCIDR"], gateway["spec"]  # set by hack/local-cluster up
    for drop in from_node:
        assert (drop["reason"], drop["node"]) == ("NO_SOCKET", server_node)
        assert drop["pod"] == f"{namespace}/server"
        assert drop["peer"] == f"node/{server_node}", drop  # not a bare 10.244.K.1


def test_a_pod_resolves_a_service_name_through_coredns(cluster: cluster_mod.Cluster, namespace: str) -> None:
    client_node, server_node = workers(cluster)[:2]
    pod_on(cluster, namespace, "web", server_node, "exec httpd -f -p 8080 -h /tmp")
    cluster.kubectl("expose", "pod", "web", "-n", namespace, "--port", "80", "--target-port", "8080")
    svc_ip = cluster.get_json("service", "-n", namespace, "web")["spec"]["clusterIP"]
    pod_on(cluster, namespace, "client", client_node, "exec sleep 3600")
    fqdn = f"web.{namespace}.svc.cluster.local"
    answer = in_pod(cluster, namespace, "client", f"nslookup {fqdn}")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert f"Address: {svc_ip}" in answer.stdout.split(fqdn, 1)[1], answer.stdout
    resolv = in_pod(cluster, namespace, "client", "cat /etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv and f"search {namespace}.svc.cluster.local" in resolv
    # the name reaches the backend across nodes through kube-proxy
    reply = in_pod(cluster, namespace, "client",
                   "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80 | head -1")
    assert reply.stdout.startswith("HTTP/1."), reply.stdout + reply.stderr  # httpd answered (404 or 200)


def test_a_service_without_endpoints_is_refused_at_once(cluster: cluster_mod.Cluster, namespace: str) -> None:
    client_node = workers(cluster)[0]
    cluster.apply("""
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing-has-this-label}
  ports: [{port: 80, targetPort: 8080}]
""", namespace)
    svc_ip = cluster.get_json("service", "-n", namespace, "empty")["spec"]["clusterIP"]
    pod_on(cluster, namespace, "client", client_node, "exec sleep 3600")
    slices = cluster.get_json("endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=empty")
    assert all(not s.get("endpoints") for s in slices["items"])
    t0 = time.monotonic()
    out = in_pod(cluster, namespace, "client", f"nc -w 5 {svc_ip} 80 </dev/null; echo rc=$?")
    took = time.monotonic() - t0
    # kube-proxy REJECTs a Service with no endpoints (seen here as "Network is unreachable"):
    # an ICMP error at once, not a 5 s timeout
    said = (out.stdout + out.stderr).lower()
    assert "rc=1" in said and ("refused" in said or "unreachable" in said), said
    assert took < 4, took


def test_a_deny_across_nodes_is_explained_at_the_destination_node(
        cluster: cluster_mod.Cluster, namespace: str) -> None:
    """No policy: the flow is allowed, but the server's own netns drops it (as a host firewall
    or a sidecar's rules would). The client's node sees only timeouts; the kernel evidence is
    the destination node's, from the drops tracer policy-test runs there in the same session."""
    client_node, server_node = workers(cluster)[:2]
    pod_on(cluster, namespace, "server", server_node, "exec httpd -f -p 8080 -h /tmp")
    pod_on(cluster, namespace, "client", client_node, "exec sleep 3600")
    pid = cluster.container_pid(namespace, "server")
    subprocess.run(["nsenter", "-t", pid, "-n", "nft", "-f", "-"], check=True, text=True, input=(
        "table inet kubectl_bpf_e2e {\n"
        "  chain input { type filter hook input priority 0; tcp dport 8080 drop; }\n}\n"))
    process = cluster.plugin("policy-test", "-n", namespace, "--from", "client", "--to", "server",
                             "--port", "8080", "--attempts", "2", "-o", "json", timeout=180)
    assert process.returncode == policy_exitcodes.UNEXPECTED_DENY, process.stderr
    (record,) = json.loads(process.stdout)["results"]
    assert (record["expected"], record["verdict"]) == ("allow", "UNEXPECTED-DENY")
    assert {a["outcome"] for a in record["attempts"]} == {"TIMEOUT"}
    assert any(line.startswith("NETFILTER_DROP at nft_do_chain") and f"in {namespace}/server" in line
               and f"on {server_node} " in line for line in record["where"]), record["where"]


def test_a_node_whose_tracer_cannot_start_is_reported_while_the_other_streams(
        cluster: cluster_mod.Cluster, namespace: str) -> None:
    """The agent image under a tag that only one node's containerd has: the other node's
    kubelet cannot pull it (there is no registry), so that node fails at start while the
    first one traces; the exit code says a node failed."""
    good_node, bad_node = workers(cluster)[:2]
    ips = {"good": pod_on(cluster, namespace, "good", good_node, "exec sleep 3600"),
           "bad": pod_on(cluster, namespace, "bad", bad_node, "exec sleep 3600")}
    image = f"localhost/kubectl-bpf/agent:e2e-{uuid.uuid4().hex[:8]}"
    ctr = ["ctr", "-a", cluster.runtime_endpoint(good_node).removeprefix("unix://"), "-n", "k8s.io", "images"]
    subprocess.run([*ctr, "tag", f"localhost/kubectl-bpf/agent:{kubectl_bpf.__version__}", image],
                   check=True, capture_output=True)
    try:
        process = cluster.plugin_process("drops", "-n", namespace, "-l", "app in (good,bad)", "--image",
                                         image, "-o", "json", "--duration", "20", "--start-timeout", "60s")
        try:
            preflight = read_until(process, "ready", timeout_s=90)
            cluster_mod.send_udp(ips["good"], CLOSED_PORT, 3)
            stdout, stderr = process.communicate(timeout=90)
        finally:
            process.kill()
    finally:
        subprocess.run([*ctr, "rm", image], check=False, capture_output=True)
    assert {r["node"] for r in preflight if r["type"] == "preflight"} == {good_node}
    assert process.returncode not in (exitcodes.OK, exitcodes.USAGE), (process.returncode, stderr)
    assert f"{bad_node}: error:" in stderr and image in stderr, stderr
    assert "Traceback" not in stderr
    drops = [r for r in cluster_mod.records(stdout) if r["type"] == "drop" and r.get("dport") == CLOSED_PORT]
    assert len(drops) == 3 and {(d["node"], d["pod"]) for d in drops} == {(good_node, f"{namespace}/good")}
