"""`kubectl bpf dns POD` against a real pod: glibc in the pod resolving a
name of its own namespace (found through the search list), a missing name,
an external name (found as it is after every suffix) and one its server
never answers.

Two servers: a pod of the test's own (tests/agent/dns_server.py, in the
agent image's Python), set with dnsPolicy None and a dnsConfig like the
kubelet's ClusterFirst one (the search list and ndots:5 are the same), which
can also stay silent; and the cluster's CoreDNS behind kube-dns (clusters of
more than one node, hack/lib/coredns.yaml), used by a pod with the default
ClusterFirst policy, whose "internet" is a root zone where example.test names
exist and nothing else does."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

import kubectl_bpf
from tests.e2e import cluster as cluster_mod
from tests.e2e.conftest import start_server

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_SOURCE = os.path.join(os.path.dirname(HERE), "agent", "dns_server.py")
IMAGE = "localhost/kubectl-bpf/agent:{version}"
# The client resolves each name once per round, forever (the pod's life bounds it).
CLIENT = """
import socket, sys, time
names = sys.argv[1:]
while True:
    for name in names:
        try:
            socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror:
            pass
    time.sleep(2)
"""


def pod(name: str, image: str, command: list[str], *, env: dict[str, str], dns: dict[str, Any]) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1,
                 "tolerations": [{"operator": "Exists"}], **dns,
                 "volumes": [{"name": "scripts", "configMap": {"name": "dns-scripts"}}],
                 "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                                 "command": command, "env": [{"name": k, "value": v} for k, v in env.items()],
                                 "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}]}]}})


def test_a_pods_lookups_show_answers_nxdomain_unanswered_and_search_chains(
        cluster: cluster_mod.Cluster, namespace: str) -> None:
    image = IMAGE.format(version=kubectl_bpf.__version__)
    with open(SERVER_SOURCE, encoding="utf-8") as source:
        scripts = {"dns_server.py": source.read(), "client.py": CLIENT}
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dns-scripts"},
                              "data": scripts}), namespace)
    service_name = f"web.{namespace}.svc.cluster.local"
    cluster.apply(pod("dnsserver", image, ["python3", "/scripts/dns_server.py", "0.0.0.0", "53"],
                      env={"DNS_ANSWER": service_name}, dns={}), namespace)
    cluster.kubectl("wait", "-n", namespace, "pod/dnsserver", "--for=condition=Ready", "--timeout=60s")
    server_ip = cluster.pod_ip(namespace, "dnsserver")
    search = [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    options = [{"name": "ndots", "value": "5"}, {"name": "timeout", "value": "1"},
               {"name": "attempts", "value": "2"}]
    dns = {"dnsPolicy": "None",
           "dnsConfig": {"nameservers": [server_ip], "searches": search, "options": options}}
    cluster.apply(pod("client", image, ["python3", "/scripts/client.py", f"web.{namespace}", "missing",
                                        "api.example.com", "x.silent.test"], env={}, dns=dns), namespace)
    cluster.kubectl("wait", "-n", namespace, "pod/client", "--for=condition=Ready", "--timeout=60s")

    process = cluster.plugin_process("dns", "-n", namespace, "client", "-o", "json", "--duration", "20",
                                     "--timeout", "1.5")
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    records = cluster_mod.records(stdout)
    lookups = [r for r in records if r["type"] == "dns"]
    assert lookups, stdout[-2000:]
    for record in lookups:
        assert record["pod"] == f"{namespace}/client"
        assert (record["server"], record["server_name"]) == (server_ip, f"{namespace}/dnsserver")

    def chains_of(base: str) -> list[dict[str, Any]]:
        return [r for r in lookups if r["chain"] and r["chain"]["base"] == base and r["chain"]["step"] == 1
                and r["chain"]["steps"] == len(r["chain"]["names"])]

    # the namespace's own name: its first try is web.NS.NS.svc..., the second suffix answers
    # (a chain whose first try came before the capture started has no chain: hence "if r['chain']")
    service = [r for r in lookups if r["name"] == service_name]
    assert service, sorted({r["name"] for r in lookups})
    assert all(r["rcode"] == "NOERROR" and r["answers"][0]["data"] == "192.0.2.10" for r in service)
    assert [r for r in service if r["chain"]]
    assert all(r["chain"]["suffix"] == "svc.cluster.local" for r in service if r["chain"])
    # the external name: three NXDOMAIN tries, then answered as it is
    external = [r for r in lookups if r["name"] == "api.example.com" and r["chain"]]
    assert external and all(r["rcode"] == "NOERROR" and r["chain"]["suffix"] is None for r in external)
    assert all(r["chain"]["steps"] == 4 and r["chain"]["wasted_ms"] > 0 for r in external)
    # the missing name: NXDOMAIN with every suffix and as it is
    assert chains_of("missing") and all(r["chain"]["answered_by"] is None for r in chains_of("missing"))
    assert {r["rcode"] for r in lookups if r["name"].startswith("missing")} == {"NXDOMAIN"}
    # never answered: UNANSWERED with glibc's retry
    silent = [r for r in lookups if r["name"] == "x.silent.test"]
    assert silent and all(r["rcode"] == "UNANSWERED" and r["retries"] == 1 for r in silent)

    (summary,) = [r for r in records if r["type"] == "summary"]
    assert summary["packets_seen"] == summary["packets_received"] + summary["packets_lost"]
    assert summary["packets_malformed"] == 0 and summary["stopped_by"] == "duration"
    assert records[-1]["type"] == "end"


DNS_SERVICE_IP = "10.96.0.10"  # hack/localcluster/topology.py
EXTERNAL = ("api.example.test", "198.51.100.7")  # hack/lib/coredns.yaml internet.db


@pytest.mark.multinode  # CoreDNS runs on clusters of more than one node
def test_a_pod_using_the_clusters_coredns_resolves_a_service_misses_one_and_finds_an_external_name(
        cluster: cluster_mod.Cluster, namespace: str) -> None:
    image = IMAGE.format(version=kubectl_bpf.__version__)
    start_server(cluster, namespace, name="web", app="web")
    cluster.kubectl("expose", "pod", "web", "-n", namespace, "--port", "80", "--target-port", "8080")
    service_ip = cluster.get_json("service", "-n", namespace, "web")["spec"]["clusterIP"]
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dns-scripts"},
                              "data": {"client.py": CLIENT}}), namespace)
    cluster.apply(pod("client", image, ["python3", "/scripts/client.py", "web", "missing", EXTERNAL[0]],
                      env={}, dns={}), namespace)  # dnsPolicy ClusterFirst: the kubelet's resolv.conf
    cluster.kubectl("wait", "-n", namespace, "pod/client", "--for=condition=Ready", "--timeout=60s")
    resolv = cluster.kubectl("exec", "-n", namespace, "client", "--", "cat", "/etc/resolv.conf")
    assert f"nameserver {DNS_SERVICE_IP}" in resolv and "ndots:5" in resolv, resolv

    process = cluster.plugin_process("dns", "-n", namespace, "client", "-o", "json", "--duration", "15")
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    records = cluster_mod.records(stdout)
    lookups = [r for r in records if r["type"] == "dns"]
    assert lookups, stdout[-2000:]
    assert {(r["pod"], r["server"]) for r in lookups} == {(f"{namespace}/client", DNS_SERVICE_IP)}

    # the Service: its first search suffix answers with the ClusterIP (one lookup: no chain)
    service = [r for r in lookups if r["name"] == f"web.{namespace}.svc.cluster.local"]
    assert service and all(r["rcode"] == "NOERROR" and r["chain"] is None for r in service), service
    assert all([a["data"] for a in r["answers"]] == [service_ip] for r in service), service
    # the missing name: NXDOMAIN with every suffix and as it is, one chain answered by none
    missing = [r for r in lookups if r["chain"] and r["chain"]["base"] == "missing"]
    assert missing and {r["rcode"] for r in missing} == {"NXDOMAIN"}
    assert all(r["chain"]["answered_by"] is None and r["chain"]["steps"] == 4 for r in missing)
    # the external name: three cluster suffixes NXDOMAIN, then answered as it is
    external = [r for r in lookups if r["chain"] and r["chain"]["base"] == EXTERNAL[0]]
    complete = [r for r in external if r["chain"]["steps"] == 4]
    assert complete, external
    for record in complete:
        chain = record["chain"]
        assert chain["names"] == [f"{EXTERNAL[0]}.{namespace}.svc.cluster.local",
                                  f"{EXTERNAL[0]}.svc.cluster.local", f"{EXTERNAL[0]}.cluster.local",
                                  EXTERNAL[0]], chain
        assert (chain["answered_by"], chain["suffix"]) == (EXTERNAL[0], None) and chain["wasted_ms"] > 0
        expected = "NOERROR" if record["name"] == EXTERNAL[0] else "NXDOMAIN"
        assert record["rcode"] == expected, record
        if expected == "NOERROR":
            assert [a["data"] for a in record["answers"]] == [EXTERNAL[1]]
    (summary,) = [r for r in records if r["type"] == "summary"]
    assert summary["packets_malformed"] == 0 and summary["unanswered"] == 0
