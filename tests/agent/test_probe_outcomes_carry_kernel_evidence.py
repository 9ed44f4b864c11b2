"""Live probes from inside a source netns, each outcome backed by the drops the
kernel saw for exactly that attempt's flow. Runs the agent as the tracer pod
does: ``python -m kubectl_bpf.agent --spec JSON``, JSON lines on stdout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any, Iterator, Optional

import pytest

from kubectl_bpf.protocol import spec
from tests.agent import kernel, netlab

pytestmark = pytest.mark.agent

# A subnet of its own: the kernel filter is host-wide, so another suite's
# namespaces with the same addresses could otherwise feed this one's runs.
SRC_V4, DST_V4 = "10.231.42.1", "10.231.42.2"
SRC_V6, DST_V6 = "fd00:231:42::1", "fd00:231:42::2"
SERVER = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2])))
    server.listen(128)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        conn.close()
"""


@pytest.fixture
def pair(lab: netlab.Lab) -> tuple[netlab.Netns, netlab.Netns]:
    """source <-veth-> destination, both address families."""
    src, dst = lab.netns("psrc"), lab.netns("pdst")
    lab.link(src, [f"{SRC_V4}/24", f"{SRC_V6}/64"], dst, [f"{DST_V4}/24", f"{DST_V6}/64"])
    return src, dst


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Helper processes a test starts are killed (by their own PID) at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def serve_tcp(namespace: netlab.Netns, address: str, port: int,
              processes: list[subprocess.Popen[str]]) -> None:
    proc = subprocess.Popen(["ip", "netns", "exec", namespace.name, sys.executable, "-c", SERVER,
                             address, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"


def probe(probe_id: str, namespace: netlab.Netns, dst: str, port: int, protocol: str = "TCP", *,
          attempts: int = 1, timeout_s: float = 1.5, **src: Any) -> dict[str, Any]:
    return {"id": probe_id, "src": src or {"netns_path": namespace.path}, "dst_ip": dst, "port": port,
            "protocol": protocol, "attempts": attempts, "timeout_s": timeout_s}


def run_spec(probes: list[dict[str, Any]], **params: Any) -> spec.RunSpec:
    total = sum(p["attempts"] for p in probes)
    return spec.RunSpec(gadget="probe", count=total, max_duration_s=60,
                        params={"probes": probes, **params})


def run_probes(probes: list[dict[str, Any]], *, during: Optional[Any] = None,
               **params: Any) -> list[dict[str, Any]]:
    """Run the agent to its end; ``during()`` runs once tracing is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "kubectl_bpf.agent", "--spec",
                             run_spec(probes, **params).to_json()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(json.loads(line))
            if lines[-1]["type"] == "ready" and during is not None:
                during()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (err, lines[-3:])
    assert lines[-1]["type"] == "end" and lines[-1]["status"] == "ok"
    return lines


def of_type(records: list[dict[str, Any]], record_type: str) -> list[dict[str, Any]]:
    return [record for record in records if record["type"] == record_type]


def summary_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    (summary,) = of_type(records, "summary")
    return summary


def test_tcp_to_a_listening_server_is_connected(pair, processes):
    src, dst = pair
    serve_tcp(dst, DST_V4, 8080, processes)
    records = run_probes([probe("web", src, DST_V4, 8080, attempts=3)])
    attempts = of_type(records, "probe")
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    for attempt in attempts:
        assert attempt["outcome"] == "CONNECTED", attempt
        assert (attempt["src"], attempt["dst"], attempt["dport"], attempt["protocol"]) == (
            SRC_V4, DST_V4, 8080, "TCP")
        assert attempt["src_netns"] == src.inode
        assert attempt["error"] is None and 0 < attempt["rtt_ms"] < 1000
    summary = summary_of(records)
    assert summary["stopped_by"] == "count"
    assert summary["attempts"] == summary["attempts_planned"] == 3
    assert summary["outcomes"] == {"CONNECTED": 3}


def test_tcp_to_a_closed_port_is_refused_and_arrival_is_proven(pair):
    src, dst = pair
    records = run_probes([probe("closed", src, DST_V4, 8081)])
    (attempt,) = of_type(records, "probe")
    assert (attempt["outcome"], attempt["error"], attempt["arrived"]) == ("REFUSED", "ECONNREFUSED", True)
    assert attempt["socket_result"] == "refused"
    assert attempt["rtt_ms"] is not None
    (evidence,) = [e for e in attempt["evidence"] if e["reason"] == "NO_SOCKET"]
    assert (evidence["direction"], evidence["netns"]) == ("forward", dst.inode)
    assert evidence["location"].startswith("tcp_v4_rcv+0x")


def test_udp_to_a_closed_port_is_delivered_with_no_socket_in_the_destination(pair):
    src, dst = pair
    records = run_probes([probe("dns", src, DST_V4, 5353, "UDP", attempts=2)])
    for attempt in of_type(records, "probe"):
        assert attempt["outcome"] == "DELIVERED", attempt
        assert attempt["arrived"] is True
        (evidence,) = attempt["evidence"]
        assert (evidence["reason"], evidence["direction"], evidence["netns"], evidence["count"]) == (
            "NO_SOCKET", "forward", dst.inode, 1)
        assert evidence["location"].startswith("__udp4_lib_rcv+0x")
        assert evidence["ifname"] and evidence["ifname"].endswith("b")  # the destination's veth end


def test_a_silent_closed_udp_port_is_delivered_without_waiting_out_the_timeout(pair):
    src, dst = pair
    dst.nft_drop("output", "icmp type destination-unreachable")  # no port unreachable comes back
    started = time.monotonic()
    records = run_probes([probe("quiet", src, DST_V4, 5353, "UDP", attempts=2, timeout_s=20)])
    assert time.monotonic() - started < 10  # the NO_SOCKET drop ended each attempt, not the 20 s
    for attempt in of_type(records, "probe"):
        assert (attempt["outcome"], attempt["arrived"], attempt["error"]) == ("DELIVERED", True, None)
        assert attempt["socket_result"] == "arrival"  # ended by the drop, not by an answer
        found = {(e["reason"], e["direction"], e["netns"]) for e in attempt["evidence"]}
        assert ("NO_SOCKET", "forward", dst.inode) in found
        assert ("NETFILTER_DROP", "reply", dst.inode) in found  # the ICMP error, dropped on its way out


def test_udp_over_ipv6_to_a_closed_port_is_delivered(pair):
    src, _ = pair
    records = run_probes([probe("dns6", src, DST_V6, 5353, "UDP")])
    (attempt,) = of_type(records, "probe")
    assert (attempt["outcome"], attempt["src"], attempt["dst"]) == ("DELIVERED", SRC_V6, DST_V6)
    found = sorted((e["location"].split("+")[0], e["reason"]) for e in attempt["evidence"])
    expected = [("__udp6_lib_rcv", "NO_SOCKET")]
    if not kernel.running().kernel_reasons:
        # Before 5.17 every kfree_skb is traced, and icmpv6_rcv frees the port-unreachable
        # error it handled in the source with one: a free the kernel gives no reason for.
        expected.append(("icmpv6_rcv", "UNKNOWN"))
    assert found == sorted(expected)


def test_nftables_drop_in_the_destination_is_a_timeout_explained_by_netfilter_drop(pair, processes):
    src, dst = pair
    serve_tcp(dst, DST_V4, 9090, processes)  # a listener behind the rule: only the rule stops it
    dst.nft_drop("input", "tcp dport 9090")
    records = run_probes([probe("blocked", src, DST_V4, 9090, attempts=2, timeout_s=1.2)])
    for attempt in of_type(records, "probe"):
        assert (attempt["outcome"], attempt["arrived"], attempt["rtt_ms"]) == ("TIMEOUT", False, None)
        assert attempt["socket_result"] == "timeout"
        (evidence,) = attempt["evidence"]
        assert (evidence["reason"], evidence["direction"], evidence["netns"]) == (
            "NETFILTER_DROP", "forward", dst.inode)
        assert evidence["location"].startswith(kernel.NETFILTER_FUNCTIONS)
        assert evidence["count"] in (1, 2)  # the SYN, and its retransmission after 1 s


def test_every_attempt_takes_a_fresh_source_port_from_the_reserved_range(pair, processes):
    src, dst = pair
    serve_tcp(dst, DST_V4, 8080, processes)
    records = run_probes([probe("a", src, DST_V4, 8080, attempts=6), probe("b", src, DST_V4, 5353, "UDP",
                                                                          attempts=6)],
                         sport_min=43000, sport_max=43019, max_in_flight=4)
    ports = [attempt["sport"] for attempt in of_type(records, "probe")]
    assert len(ports) == 12
    assert len(set(ports)) == 12
    assert all(43000 <= port <= 43019 for port in ports)


def test_drops_of_unrelated_traffic_are_not_attributed(pair):
    src, dst = pair
    dst.nft_drop("input", "udp dport 7777")
    records = run_probes([probe("blocked", src, DST_V4, 7777, "UDP", attempts=2)],
                         during=lambda: src.traffic("udp", DST_V4, "7777", "5"))
    for attempt in of_type(records, "probe"):
        assert attempt["outcome"] == "TIMEOUT"
        (evidence,) = attempt["evidence"]
        assert (evidence["reason"], evidence["count"]) == ("NETFILTER_DROP", 1)  # its own datagram only
    summary = summary_of(records)
    assert summary["evidence_unmatched"] >= 5
    assert summary["drops"] == summary["events"] + summary["lost"] + summary["suppressed"]


def test_a_source_given_by_pid_is_entered_through_its_netns(pair, processes):
    src, _ = pair
    sleeper = subprocess.Popen(["ip", "netns", "exec", src.name, "sleep", "60"], text=True)
    processes.append(sleeper)
    time.sleep(0.2)  # ip netns exec has entered the netns and exec'd sleep
    records = run_probes([probe("by-pid", src, DST_V4, 5353, "UDP", pid=sleeper.pid)])
    (attempt,) = of_type(records, "probe")
    assert (attempt["outcome"], attempt["src"], attempt["src_netns"]) == ("DELIVERED", SRC_V4, src.inode)


def test_a_missing_source_is_an_error_record_and_the_other_probes_run(pair):
    src, _ = pair
    records = run_probes([probe("gone", src, DST_V4, 5353, "UDP", attempts=2,
                                netns_path="/run/netns/kbpf-none"),
                          probe("here", src, DST_V4, 5353, "UDP")])
    by_id: dict[str, list[dict[str, Any]]] = {}
    for attempt in of_type(records, "probe"):
        by_id.setdefault(attempt["id"], []).append(attempt)
    assert [a["outcome"] for a in by_id["gone"]] == ["ERROR", "ERROR"]
    assert all("no network namespace" in a["error"] and a["sport"] is None for a in by_id["gone"])
    assert [a["outcome"] for a in by_id["here"]] == ["DELIVERED"]


def test_attempts_respect_the_rate_limit(pair, processes):
    src, dst = pair
    serve_tcp(dst, DST_V4, 8080, processes)
    records = run_probes([probe(f"p{i}", src, DST_V4, 8080) for i in range(10)], rate_per_s=10,
                         evidence_grace_s=0)
    starts = sorted(attempt["time"] for attempt in of_type(records, "probe"))
    first, last = (time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + float(t[19:-1])
                   for t in (starts[0], starts[-1]))
    assert last - first >= 0.85  # 10 starts at 10/s: 0.9 s between the first and the last
    assert summary_of(records)["outcomes"] == {"CONNECTED": 10}


def test_a_count_that_is_not_the_number_of_attempts_is_refused():
    bad = spec.RunSpec(gadget="probe", count=5, params={"probes": [
        {"id": "x", "src": {"pid": 1}, "dst_ip": "192.0.2.1", "port": 80, "attempts": 2}]})
    result = subprocess.run([sys.executable, "-m", "kubectl_bpf.agent", "--spec", bad.to_json()],
                            capture_output=True, text=True, timeout=30, check=False)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 2
    assert [r["type"] for r in records] == ["error", "end"]
    assert "set count to 2" in records[0]["message"]


def test_an_interrupted_run_reports_the_attempt_in_flight_as_aborted(pair):
    src, dst = pair
    dst.nft_drop("input", "tcp dport 9090")
    proc = subprocess.Popen([sys.executable, "-m", "kubectl_bpf.agent", "--spec", run_spec(
        [probe("slow", src, DST_V4, 9090, attempts=3, timeout_s=30)]).to_json()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["type"] == "preflight"
        assert json.loads(proc.stdout.readline())["type"] == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    (attempt,) = of_type(records, "probe")
    assert (attempt["outcome"], attempt["attempt"]) == ("ABORTED", 1)
    assert [e["reason"] for e in attempt["evidence"]] == ["NETFILTER_DROP"]  # what was seen so far
    summary = summary_of(records)
    assert (summary["stopped_by"], summary["attempts"], summary["attempts_planned"]) == ("SIGINT", 1, 3)
    assert records[-1]["type"] == "end"
