"""The plugin against the real cluster's API when it cannot be reached, and
as a user who holds exactly the shipped roles.

The local cluster is shared, so its API server is never stopped here: the
"server down" case is a copy of the real kubeconfig (same CA, same client
key) whose server is a closed port on the API server's own address, and
the "server hangs" case points it at a loopback listener of this test that
accepts and never answers.
"""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest
import yaml

from kubectl_bpf.gadgets.policy_test import exitcodes as verdicts
from kubectl_bpf.protocol import exitcodes
from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import start_server

MANIFESTS = cluster_mod.REPO / "manifests"
VERDICT_CODES = (verdicts.UNEXPECTED_DENY, verdicts.UNEXPECTED_ALLOW, verdicts.INTENT_MISMATCH)


def kubeconfig_copy(cluster: cluster_mod.Cluster, path: pathlib.Path, *, server: str | None = None,
                    token: str | None = None) -> pathlib.Path:
    """The cluster's kubeconfig, flattened (data inline), with another server or a token user."""
    config = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--flatten"))
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    if token is not None:
        config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


def real_server(cluster: cluster_mod.Cluster) -> str:
    return str(yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--flatten"))
               ["clusters"][0]["cluster"]["server"])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def every_command(namespace: str) -> list[list[str]]:
    return [["drops", "-n", namespace, "server", "--duration", "2"],
            ["tcp", "-n", namespace, "server", "--duration", "2"],
            ["policy-test", "--from", f"{namespace}/client", "--to", f"{namespace}/server", "--port", "8080"],
            ["policy-test", "-n", namespace],
            ["list"], ["gc"], ["setup", "--apply"]]


def run(cluster: cluster_mod.Cluster, config: pathlib.Path, *args: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(cluster.env, KUBECONFIG=str(config))
    return subprocess.run([sys.executable, "-m", "kubectl_bpf", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cluster_mod.REPO, check=False)


def assert_unreachable(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == exitcodes.UNREACHABLE, result.stderr
    assert len(lines) == 1 and lines[0].startswith("kubectl-bpf: error: "), result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_an_api_server_that_is_down_is_one_line_and_exit_8_for_every_command(
        cluster: cluster_mod.Cluster, namespace: str, tmp_path: pathlib.Path) -> None:
    host = real_server(cluster).rsplit(":", 1)[0]
    down = f"{host}:{closed_port()}"
    config = kubeconfig_copy(cluster, tmp_path / "down", server=down)
    for argv in every_command(namespace):
        assert_unreachable(run(cluster, config, *argv), f"cannot reach the API server {down}",
                           "connection refused")
    assert not cluster.managed_objects()


def test_an_api_server_that_never_answers_honours_request_timeout(
        cluster: cluster_mod.Cluster, namespace: str, tmp_path: pathlib.Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.listen(64)  # the kernel completes the handshakes; nobody ever reads
        silent = f"https://127.0.0.1:{listener.getsockname()[1]}"
        config = kubeconfig_copy(cluster, tmp_path / "silent", server=silent)
        for argv in every_command(namespace):
            started = time.monotonic()
            result = run(cluster, config, *argv, "--request-timeout", "2s", timeout=60)
            assert time.monotonic() - started < 20, argv
            assert_unreachable(result, f"no answer from the API server {silent} in time")


def test_a_rejected_token_is_one_line_without_warnings(cluster: cluster_mod.Cluster, namespace: str,
                                                       tmp_path: pathlib.Path) -> None:
    config = kubeconfig_copy(cluster, tmp_path / "badtoken", token="not-a-token")
    assert_unreachable(run(cluster, config, "drops", "-n", namespace, "server"), "401 Unauthorized")


def test_sigkill_leaves_no_credential_in_the_temp_dir(cluster: cluster_mod.Cluster, namespace: str,
                                                      tmp_path: pathlib.Path) -> None:
    """The real kubeconfig carries client-key-data: it must never reach TMPDIR."""
    start_server(cluster, namespace)
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    config = kubeconfig_copy(cluster, tmp_path / "admin")
    env = dict(cluster.env, KUBECONFIG=str(config), TMPDIR=str(temp_dir))
    process = subprocess.Popen([sys.executable, "-m", "kubectl_bpf", "drops", "-n", namespace, "server"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=cluster_mod.REPO)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the Job exists: the client has talked TLS for a while
            if "created" in line:
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate(timeout=30)
    assert list(temp_dir.iterdir()) == []
    # The lease lapses and the agent stops by itself; gc removes what the kill left.
    cluster_mod.wait_for("the killed session's job to finish", lambda: cluster.plugin("gc").returncode == 0
                         and not cluster.managed_objects(), timeout_s=120, period_s=3)


@pytest.fixture
def shipped_roles_user(cluster: cluster_mod.Cluster, namespace: str,
                       tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A ServiceAccount bound to exactly the shipped roles (manifests/rbac.yaml), as a kubeconfig."""
    cluster.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))
    cluster.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))
    user = "e2e-rbac"
    binding = f"kubectl-bpf-user-{namespace}"
    cluster.kubectl("create", "serviceaccount", user, "-n", namespace)
    subject = f"--serviceaccount={namespace}:{user}"
    cluster.kubectl("create", "clusterrolebinding", binding, "--clusterrole=kubectl-bpf-user", subject)
    cluster.kubectl("create", "rolebinding", binding, "-n", cluster_mod.JOB_NAMESPACE,
                    "--role=kubectl-bpf-user", subject)
    token = cluster.kubectl("create", "token", user, "-n", namespace, "--duration=1h").strip()
    try:
        yield kubeconfig_copy(cluster, tmp_path / "user", token=token)
    finally:
        cluster.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "rolebinding", binding, "-n", cluster_mod.JOB_NAMESPACE,
                        "--ignore-not-found", check=False)


def test_the_shipped_roles_run_every_command(cluster: cluster_mod.Cluster, namespace: str,
                                             shipped_roles_user: pathlib.Path) -> None:
    start_server(cluster, namespace)
    start_server(cluster, namespace, name="client", app="client")
    config = shipped_roles_user
    for argv in every_command(namespace)[:-1]:  # setup --apply is for cluster-admin
        result = run(cluster, config, *argv)
        assert result.returncode != exitcodes.PERMISSION, (argv, result.stderr)
        assert "forbidden" not in result.stderr and "missing permission" not in result.stderr, result.stderr
        if argv[0] == "tcp":  # its Job ran: past every permission (the node's agent image may predate tcp)
            assert "created" in result.stderr, result.stderr
            continue
        # policy-test may report verdicts (10-12); nothing else may fail.
        assert result.returncode in (exitcodes.OK, *VERDICT_CODES), (argv, result.returncode, result.stderr)
    env = dict(cluster.env, KUBECONFIG=str(config))
    completion = subprocess.run(
        [sys.executable, "-c", "from kubectl_bpf.cli import completion; completion.main()",
         "__complete", "drops", "-n", namespace, "ser"], capture_output=True, text=True, env=env,
        cwd=cluster_mod.REPO, timeout=60, check=False)
    assert completion.stdout.splitlines() == ["server", ":4"], completion.stderr
    setup = run(cluster, config, "setup", "--apply")
    assert setup.returncode == exitcodes.PERMISSION, setup.stderr  # needs cluster-admin, says so
    assert json.loads(run(cluster, config, "list", "-o", "json").stdout)["sessions"] == []
