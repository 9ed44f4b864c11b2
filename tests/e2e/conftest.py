"""The e2e tier: the plugin against the project's own local cluster.

The cluster is brought up once per run if it is not already healthy, with
NODES nodes as CI's `make test` does (the tests are node-agnostic; the
multinode tier needs 3), and taken down afterwards unless it was already up
or --keep-cluster is given. A healthy cluster is used as it is. Each test
gets its own namespace; every test checks that the plugin left nothing in
its job namespace.
"""

from __future__ import annotations

import subprocess
import uuid
from typing import Iterator

import pytest

from tests.e2e import cluster as cluster_mod

pytestmark = pytest.mark.e2e
NODES = 3  # Makefile E2E_NODES


def _healthy() -> bool:
    status = subprocess.run([str(cluster_mod.LOCAL_CLUSTER), "status"], capture_output=True, check=False)
    return status.returncode == 0


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[cluster_mod.Cluster]:
    was_up = _healthy()
    if not was_up:
        result = subprocess.run([str(cluster_mod.LOCAL_CLUSTER), "up", "--nodes", str(NODES)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"hack/local-cluster up failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                        pytrace=False)
    handle = cluster_mod.Cluster(cluster_mod.cluster_env())
    yield handle
    if not was_up and not request.config.getoption("--keep-cluster"):
        subprocess.run([str(cluster_mod.LOCAL_CLUSTER), "down"], capture_output=True, check=False)


@pytest.fixture
def namespace(cluster: cluster_mod.Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster_mod.wait_for(f"the default service account of {name}",
                         lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False),
                         timeout_s=30)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(autouse=True)
def _nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every e2e test: no Job or pod of the plugin remains (allowing
    terminating pods a bounded time to go)."""
    yield
    if "cluster" not in request.fixturenames:
        return
    handle: cluster_mod.Cluster = request.getfixturevalue("cluster")
    cluster_mod.wait_for("the plugin's jobs and pods to be gone",
                         lambda: not handle.managed_objects() or None, timeout_s=60)


SERVER = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{{label}: {value}}}}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  tolerations: [{{operator: Exists}}]
  containers:
  - name: server
    image: localhost/kubectl-bpf/busybox:1
    imagePullPolicy: IfNotPresent
    command: ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
    ports: [{{containerPort: 8080, name: http}}]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"""


def create_server(cluster: cluster_mod.Cluster, namespace: str, name: str, *, label: str = "app",
                  value: str = "server") -> None:
    """A busybox HTTP server on 8080 (named http); every other port is closed (NO_SOCKET drops)."""
    cluster.apply(SERVER.format(name=name, label=label, value=value), namespace)


def start_server(cluster: cluster_mod.Cluster, namespace: str, name: str = "server",
                 app: str = "server") -> str:
    """create_server, then wait until it is Ready; returns its IP."""
    create_server(cluster, namespace, name, value=app)
    cluster.kubectl("wait", "-n", namespace, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    return cluster.pod_ip(namespace, name)
