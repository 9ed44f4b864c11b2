"""`kubectl bpf policy-test` live, against real pods and a real enforcer (kube-router's
firewall, hack/policy-enforcer): a policy set probed as a matrix, a policy nobody
enforces, a drop below the policy layer explained by the kernel, and a closed port."""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import create_server

ENFORCER = cluster_mod.REPO / "hack" / "policy-enforcer"
EXIT_UNEXPECTED_DENY = 10
EXIT_UNEXPECTED_ALLOW = 11

POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client}
spec:
  podSelector: {matchLabels: {role: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 8080}]
"""


def enforcer(*args: str, check: bool = True) -> str:
    result = subprocess.run([str(ENFORCER), *args], capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"policy-enforcer {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def policy_enforcer(cluster: cluster_mod.Cluster) -> Iterator[None]:
    """kube-router's firewall, up for these tests; down at the end unless it ran before."""
    was_running = subprocess.run([str(ENFORCER), "status"], capture_output=True, check=False).returncode == 0
    enforcer("up")
    yield
    if not was_running:
        enforcer("down", check=False)


def start_pods(cluster: cluster_mod.Cluster, namespace: str, roles: dict[str, str]) -> None:
    for name, role in roles.items():
        create_server(cluster, namespace, name, label="role", value=role)
    for name in roles:
        cluster.kubectl("wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")


def results(process: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(process.stdout)["results"]
    return records


def test_default_deny_plus_allow_from_label_passes_in_every_cell(
        cluster: cluster_mod.Cluster, namespace: str, policy_enforcer: None, tmp_path: pathlib.Path) -> None:
    offset = enforcer("log-offset")
    roles = {"server-1": "server", "server-2": "server", "client": "client", "other": "other"}
    start_pods(cluster, namespace, roles)
    cluster.apply(POLICIES, namespace)
    enforcer("wait-sync", offset, *(f"{namespace}/{name}" for name in [*roles, "default-deny",
                                                                         "server-from-client"]))
    junit = tmp_path / "report.xml"
    process = cluster.plugin("policy-test", "-n", namespace, "--port", "8080", "-o", "json",
                             "--junit", str(junit), timeout=180)
    assert process.returncode == 0, process.stderr + process.stdout
    records = results(process)
    assert len(records) == 16
    probed = [r for r in records if r["from"] != r["to"]]
    assert {r["verdict"] for r in probed} == {"PASS"}, [(r["from"], r["to"], r["observed"]) for r in probed]
    allowed = {(r["from"], r["to"]) for r in probed if r["expected"] == "allow"}
    assert allowed == {(f"{namespace}/client", f"{namespace}/server-1"),
                       (f"{namespace}/client", f"{namespace}/server-2")}
    for record in probed:
        outcomes = {a["outcome"] for a in record["attempts"]}
        blocked = outcomes <= {"REFUSED", "TIMEOUT"}  # kube-router REJECTs (ICMP, rate-limited)
        assert outcomes == {"CONNECTED"} if record["expected"] == "allow" else blocked
    assert 'failures="0"' in junit.read_text()


def test_closed_port_is_delivered_not_a_failure(cluster: cluster_mod.Cluster, namespace: str) -> None:
    start_pods(cluster, namespace, {"client": "client", "server": "server"})
    process = cluster.plugin("policy-test", "-n", namespace, "--from", "client", "--to", "server",
                             "--port", "9999", "-o", "json")
    assert process.returncode == 0, process.stderr
    (record,) = results(process)
    assert (record["expected"], record["verdict"]) == ("allow", "PASS")
    assert all(a["outcome"] in ("REFUSED", "DELIVERED") and a["arrived"] for a in record["attempts"])


def test_drop_below_the_policy_layer_is_an_unexpected_deny_explained_by_the_kernel(
        cluster: cluster_mod.Cluster, namespace: str) -> None:
    start_pods(cluster, namespace, {"client": "client", "server": "server"})
    pid = cluster.container_pid(namespace, "server")
    # Gone with the pod's netns when the namespace is deleted.
    subprocess.run(["nsenter", "-t", pid, "-n", "nft", "-f", "-"], check=True, text=True, input=(
        "table inet kubectl_bpf_e2e {\n"
        "  chain input { type filter hook input priority 0; tcp dport 8080 drop; }\n}\n"))
    process = cluster.plugin("policy-test", "-n", namespace, "--from", "client", "--to", "server",
                             "--port", "8080", "--attempts", "2", "-o", "json")
    assert process.returncode == EXIT_UNEXPECTED_DENY, process.stderr
    (record,) = results(process)
    assert (record["expected"], record["verdict"]) == ("allow", "UNEXPECTED-DENY")
    assert {a["outcome"] for a in record["attempts"]} == {"TIMEOUT"}
    assert any(line.startswith("NETFILTER_DROP at nft_do_chain") and f"in {namespace}/server" in line
               for line in record["where"]), record["where"]


def test_a_policy_the_enforcer_cannot_see_is_an_unexpected_allow(
        cluster: cluster_mod.Cluster, namespace: str, policy_enforcer: None) -> None:
    start_pods(cluster, namespace, {"client": "client", "server": "server"})
    enforcer("down")
    try:
        cluster.apply(POLICIES.split("---", maxsplit=1)[0], namespace)  # default deny, now enforced by nobody
        process = cluster.plugin("policy-test", "-n", namespace, "--from", "client", "--to", "server",
                                 "--port", "8080")
    finally:
        enforcer("up")
    assert process.returncode == EXIT_UNEXPECTED_ALLOW, process.stderr + process.stdout
    row = next(line for line in process.stdout.splitlines() if line.startswith(f"{namespace}/client"))
    assert "UNEXPECTED-ALLOW" in row and "CONNECTED x3" in row and f"{namespace}/default-deny" in row


def test_spec_file_run_writes_junit_and_flags_intent_mismatch(
        cluster: cluster_mod.Cluster, namespace: str, tmp_path: pathlib.Path) -> None:
    start_pods(cluster, namespace, {"client": "client", "server": "server"})
    tests = tmp_path / "tests.yaml"
    tests.write_text(f"""
apiVersion: kubectl-bpf.io/v1alpha1
kind: PolicyTest
defaults: {{namespace: {namespace}, attempts: 2, timeout: 1s}}
endpoints:
  clients: {{selector: {{role: client}}}}
  server: {{pod: server}}
tests:
- {{name: clients-reach-server, from: clients, to: server, ports: [8080], expect: allow}}
- {{name: server-closed-to-clients, from: server, to: clients, ports: [8080], expect: deny}}
""")
    junit = tmp_path / "report.xml"
    process = cluster.plugin("policy-test", "-f", str(tests), "--junit", str(junit), "-o", "json")
    assert process.returncode == 12, process.stderr  # no policy: the declared deny is not what is computed
    verdicts = {(r["name"], r["verdict"]) for r in results(process)}
    assert verdicts == {("clients-reach-server", "PASS"), ("server-closed-to-clients", "INTENT-MISMATCH")}
    report = junit.read_text()
    assert 'tests="2" failures="1"' in report and 'classname="server-closed-to-clients"' in report
