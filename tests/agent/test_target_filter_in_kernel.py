"""The kernel filter: a drop matches by the netns it happened in OR by the
target's IPs (drops outside the netns), and nothing else is reported."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

import pytest

from tests.agent import netlab
from tests.agent.conftest import CLIENT_V4, TARGET_V4

pytestmark = pytest.mark.agent


@pytest.fixture
def routed(lab: netlab.Lab) -> tuple[netlab.Netns, netlab.Netns, netlab.Netns]:
    """client 10.231.1.2 <-> router <-> target 10.231.2.2, routed."""
    client, router, target = lab.netns("client"), lab.netns("router"), lab.netns("target")
    lab.link(client, ["10.231.1.2/24"], router, ["10.231.1.1/24"])
    lab.link(router, ["10.231.2.1/24"], target, [f"{TARGET_V4}/24"])
    router.sysctl("net.ipv4.ip_forward=1")
    client.ip("route", "add", "default", "via", "10.231.1.1")
    target.ip("route", "add", "default", "via", "10.231.2.1")
    return client, router, target


def test_drop_in_router_namespace_is_reported_by_target_ip(routed, trace):
    client, router, target = routed
    router.nft_drop("forward", f"ip daddr {TARGET_V4} udp dport 7101")
    tracer = trace("--netns", target.path)  # the target's IP is discovered from its netns
    client.traffic("udp", TARGET_V4, "7101", "4")
    tracer.settle()
    tracer.stop()
    drops = tracer.drops(dport=7101)
    assert len(drops) == 4
    for drop in drops:
        assert drop["netns"] == router.inode != target.inode
        assert (drop["reason"], drop["direction"]) == ("NETFILTER_DROP", "ingress")
        assert (drop["src"], drop["dst"]) == ("10.231.1.2", TARGET_V4)


def test_ip_target_alone_matches_drops_in_any_namespace(routed, trace):
    client, router, target = routed
    router.nft_drop("forward", "udp dport 7102")
    tracer = trace("--ip", TARGET_V4)
    client.traffic("udp", TARGET_V4, "7102", "2")  # dropped in the router
    client.traffic("udp", TARGET_V4, "7103", "2")  # dropped in the target: closed port
    tracer.settle()
    tracer.stop()
    assert {d["netns"] for d in tracer.drops(dport=7102)} == {router.inode}
    assert {d["netns"] for d in tracer.drops(dport=7103)} == {target.inode}


def test_drops_in_an_unrelated_namespace_are_not_reported(pair, lab, trace):
    client, target = pair
    unrelated = lab.netns("unrelated")
    tracer = trace("--netns", target.path)
    unrelated.traffic("udp", "127.0.0.1", "7104", "20")
    client.traffic("udp", TARGET_V4, "7105", "1")  # proves the tracer was live meanwhile
    tracer.settle()
    tracer.stop()
    assert len(tracer.drops(dport=7105)) == 1
    assert not tracer.drops(dport=7104)
    assert unrelated.inode not in {d["netns"] for d in tracer.drops()}
    assert tracer.summary["drops"] == len(tracer.drops())


@pytest.fixture
def sleeper(pair):
    """A process living in the target netns, moved into a container-like cgroup."""
    _, target = pair
    proc = subprocess.Popen(["ip", "netns", "exec", target.name, "sleep", "60"])
    container_id = secrets.token_hex(32)
    root = next(p for p in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                if os.path.exists(os.path.join(p, "cgroup.procs")))
    cgroup = os.path.join(root, f"kubectl-bpf-test-{container_id}")
    os.mkdir(cgroup)
    try:
        deadline = time.monotonic() + 5
        while not os.readlink(f"/proc/{proc.pid}/exe").endswith("sleep"):
            assert time.monotonic() < deadline, "sleep did not start"
            time.sleep(0.01)
        with open(os.path.join(cgroup, "cgroup.procs"), "w", encoding="ascii") as procs:
            procs.write(str(proc.pid))
        yield proc.pid, container_id
    finally:
        proc.kill()
        proc.wait()
        os.rmdir(cgroup)


def test_pid_target_traces_that_process_netns(pair, sleeper, trace):
    client, target = pair
    pid, _ = sleeper
    tracer = trace("--pid", str(pid))
    assert tracer.records[0]["target"]["netns"] == [target.inode]
    client.traffic("udp", TARGET_V4, "7106", "2")
    tracer.settle()
    tracer.stop()
    assert [d["src"] for d in tracer.drops(dport=7106)] == [CLIENT_V4, CLIENT_V4]


@pytest.mark.parametrize("prefix", ["containerd://", "cri-o://", "docker://", ""])
def test_container_id_with_any_runtime_prefix_resolves_by_cgroup_scan(pair, sleeper, trace, prefix):
    client, target = pair
    _, container_id = sleeper
    tracer = trace("--container-id", prefix + container_id)
    preflight = tracer.records[0]
    assert preflight["target"]["netns"] == [target.inode]
    assert TARGET_V4 in preflight["target"]["ips"]
    client.traffic("udp", TARGET_V4, "7107", "1")
    tracer.settle()
    tracer.stop()
    assert len(tracer.drops(dport=7107)) == 1
