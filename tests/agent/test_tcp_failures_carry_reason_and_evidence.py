"""``kubectl-bpf tcp --local``: each way a connection fails is one line with
the kernel's reason, failures carry the drop that explains them, and the
counts are exact. Traffic runs between namespaces the tests create."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable, Iterator

import pytest

from kubectl_bpf.agent import libbpf, loader
from kubectl_bpf.gadgets.tcp import node
from tests.agent import kernel, netlab, tracer

pytestmark = pytest.mark.agent

# A subnet of its own: the evidence filter is host-wide by address.
CLIENT_V4, SERVER_V4 = "10.231.77.1", "10.231.77.2"
CLIENT_V6, SERVER_V6 = "fd00:231:77::1", "fd00:231:77::2"
SERVER = """
import socket, struct, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
mode = sys.argv[3]
with socket.socket(family, socket.SOCK_STREAM) as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2])))
    server.listen(512)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        if mode == "linger0":
            conn.recv(100)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "sink":
            while conn.recv(65536):
                pass
        conn.close()
"""
CLIENT_RESET = """
import socket, sys, time
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as sock:
    sock.sendall(b"hello")
    try:
        print(sock.recv(10) or "eof")
    except ConnectionResetError:
        print("reset")
"""
CLIENT_SEND = """
import socket, sys, time
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20) as sock:
    for _ in range(int(sys.argv[3])):
        sock.sendall(b"x" * 1000)
        time.sleep(0.01)
    sock.shutdown(socket.SHUT_WR)
    sock.recv(10)
print("sent")
"""
CLIENT_FLOOD = """
import errno, socket, sys
refused = 0
for _ in range(int(sys.argv[3])):
    with socket.socket() as sock:
        if sock.connect_ex((sys.argv[1], int(sys.argv[2]))) == errno.ECONNREFUSED:
            refused += 1
print(refused)
"""


@pytest.fixture
def pair(lab: netlab.Lab) -> tuple[netlab.Netns, netlab.Netns, str, str]:
    client, server = lab.netns("tcpc"), lab.netns("tcps")
    client_dev, server_dev = lab.link(client, [f"{CLIENT_V4}/24", f"{CLIENT_V6}/64"],
                                      server, [f"{SERVER_V4}/24", f"{SERVER_V6}/64"])
    return client, server, client_dev, server_dev


@pytest.fixture
def serve() -> Iterator[Callable[[netlab.Netns, str, int, str], None]]:
    started: list[subprocess.Popen[str]] = []

    def start(namespace: netlab.Netns, address: str, port: int, mode: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", namespace.name, sys.executable, "-c", SERVER,
                                 address, str(port), mode], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def tcp_trace(tracers: list[tracer.Tracer], *args: str) -> tracer.Tracer:
    running = tracer.Tracer(*args, gadget="tcp")
    tracers.append(running)
    return running.ready()


def lines(run: tracer.Tracer, event: str, **fields: Any) -> list[dict[str, Any]]:
    return [record for record in run.of_type("tcp")
            if record["event"] == event and all(record.get(k) == v for k, v in fields.items())]


def assert_exact(summary: dict[str, Any]) -> None:
    assert summary["seen"] == summary["events"] + summary["lost"] + summary["suppressed"]
    assert summary["unaccounted"] == 0


def test_connect_to_a_closed_port_is_one_refused_line(pair, tracers) -> None:  # type: ignore[no-untyped-def]
    client, _server, _, _ = pair
    run = tcp_trace(tracers, "--netns", client.path)
    assert client.traffic("tcp", SERVER_V4, "81").strip() == "refused"
    run.settle()
    assert run.stop() == 0
    (refused,) = lines(run, "REFUSED")
    assert (refused["src"], refused["dst"], refused["dport"]) == (CLIENT_V4, SERVER_V4, 81)
    assert refused["sport"] > 0 and refused["direction"] == "outbound" and refused["state"] == "SYN_SENT"
    assert refused["reason"] == "ECONNREFUSED" and 0 < refused["latency_ms"] < 1000
    assert refused["netns"] == client.inode
    # Only the target's sockets: the server's kernel sent the RST in its own netns.
    assert not lines(run, "RESET-SENT")
    (peer,) = [p for p in run.summary["peers"] if p["port"] == 81]
    assert (peer["peer"], peer["attempts"], peer["refused"], peer["established"]) == (SERVER_V4, 1, 1, 0)
    assert_exact(run.summary)


def test_dropped_syns_time_out_with_the_netfilter_drop_as_evidence(pair, tracers) -> None:  # type: ignore[no-untyped-def]
    client, server, _, _ = pair
    server.nft_drop("input", "tcp dport 82")
    run = tcp_trace(tracers, "--netns", client.path)
    assert client.traffic("tcp", SERVER_V4, "82").strip() == "timeout"  # gives up after 2 s
    run.settle()
    assert run.stop() == 0
    (timeout,) = lines(run, "TIMEOUT")
    assert timeout["dport"] == 82 and timeout["retransmits"] >= 1 and timeout["latency_ms"] >= 1900
    evidence = timeout["evidence"]
    assert evidence is not None, timeout
    assert (evidence["packet"], evidence["reason"]) == ("SYN", "NETFILTER_DROP")
    assert evidence["direction"] == "outbound"
    assert evidence["location"].startswith(kernel.NETFILTER_FUNCTIONS)
    assert evidence["netns"] == server.inode and evidence["count"] == timeout["retransmits"] + 1
    assert run.summary["evidence"] and run.summary["reasons"]["NETFILTER_DROP"] >= 2


def test_linger_zero_close_is_reset_sent_and_received_with_reasons(pair, tracers, serve) -> None:  # type: ignore[no-untyped-def]
    client, server, _, _ = pair
    serve(server, SERVER_V4, 83, "linger0")
    run = tcp_trace(tracers, "--netns", client.path, "--netns", server.path)
    assert client.exec(sys.executable, "-c", CLIENT_RESET, SERVER_V4, "83").strip() == "reset"
    run.settle()
    assert run.stop() == 0
    (connected,) = lines(run, "CONNECTED", dport=83)
    (accepted,) = lines(run, "ACCEPTED", sport=83)
    assert accepted["direction"] == "inbound" and accepted["src"] == SERVER_V4
    (sent,) = lines(run, "RESET-SENT", sport=83)
    (received,) = lines(run, "RESET-RECEIVED", dport=83)
    assert received["state"] == "ESTABLISHED" and received["sport"] == connected["sport"]
    assert received["bytes_acked"] == 6  # SYN + "hello"
    assert sent["state"] == "ESTABLISHED" and sent["direction"] == "inbound"
    btf = libbpf.Btf.load_vmlinux()
    try:
        has_reasons = btf.typedef_arity("btf_trace_tcp_send_reset") >= node.RESET_REASON_ARITY
    finally:
        btf.free()
    if has_reasons:  # 6.10+: the kernel says why
        assert sent["reason"] == "TCP_STATE" and sent["reason_code"] is not None
    else:  # documented degradation: no reason, the line is still there
        assert sent["reason"] is None and sent["reason_code"] is None


def test_lost_segments_are_retransmit_lines_folded_per_connection(pair, tracers, serve) -> None:  # type: ignore[no-untyped-def]
    client, server, _, _ = pair
    serve(server, SERVER_V4, 84, "sink")
    # Every 4th data segment to the server is dropped (never the handshake).
    server.nft_drop("input", "tcp dport 84 tcp flags & syn == 0 meta length > 100 numgen inc mod 4 == 0")
    run = tcp_trace(tracers, "--netns", client.path, "--retransmit-gap", "0.5")
    assert client.exec(sys.executable, "-c", CLIENT_SEND, SERVER_V4, "84", "60").strip() == "sent"
    run.settle()
    assert run.stop() == 0
    retransmits = lines(run, "RETRANSMIT", dport=84)
    assert retransmits, run.of_type("tcp")
    (peer,) = [p for p in run.summary["peers"] if p["port"] == 84]
    # Every retransmit is in exactly one line: folded into the next, or the one at close.
    assert sum(line["retransmits"] for line in retransmits) == peer["retransmits"] > len(retransmits)
    assert run.summary["lost"] == 0 and run.summary["suppressed"] > 0
    assert_exact(run.summary)
    assert any(line["evidence"] and line["evidence"]["reason"] == "NETFILTER_DROP" for line in retransmits)
    # The state the segment was retransmitted in; a line at close names the state it closed from.
    assert retransmits[0]["state"] == "ESTABLISHED"
    assert {line["state"] for line in retransmits} <= {"ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSING",
                                                       "LAST_ACK", "CLOSE_WAIT", "TIME_WAIT"}


def test_connect_latency_follows_an_injected_delay(pair, tracers, serve) -> None:  # type: ignore[no-untyped-def]
    """The delay: every other SYN is dropped, so each connect waits out the
    kernel's initial retransmission timeout (1 s, TCP_TIMEOUT_INIT). This
    kernel kind has no sch_netem, so nft injects it."""
    client, server, _, _ = pair
    serve(server, SERVER_V4, 85, "close")
    server.nft_drop("input", "tcp dport 85 tcp flags & (syn | ack) == syn numgen inc mod 2 == 0")
    run = tcp_trace(tracers, "--netns", client.path)
    for _ in range(3):
        assert client.traffic("tcp", SERVER_V4, "85").strip() == "connected"
    run.settle()
    assert run.stop() == 0
    connected = lines(run, "CONNECTED", dport=85)
    assert len(connected) == 3
    assert all(1000 <= line["latency_ms"] < 1200 for line in connected), connected
    assert all(line["retransmits"] == 1 for line in connected)
    (peer,) = [p for p in run.summary["peers"] if p["port"] == 85]
    # The histogram's buckets span 1/8 of a power of two: the midpoint is within 1/16.
    assert peer["established"] == 3 and 1000 * 15 / 16 <= peer["latency_p50_ms"] <= 1200 * 17 / 16


def test_ipv6_connections_are_traced_like_ipv4(pair, tracers) -> None:  # type: ignore[no-untyped-def]
    client, server, _, _ = pair
    server.nft_drop("input", "tcp dport 86")
    run = tcp_trace(tracers, "--netns", client.path)
    assert client.traffic("tcp", SERVER_V6, "87").strip() == "refused"
    assert client.traffic("tcp", SERVER_V6, "86").strip() == "timeout"
    run.settle()
    assert run.stop() == 0
    (refused,) = lines(run, "REFUSED", dport=87)
    assert (refused["src"], refused["dst"]) == (CLIENT_V6, SERVER_V6)
    (timeout,) = lines(run, "TIMEOUT", dport=86)
    assert timeout["evidence"] and timeout["evidence"]["reason"] == "NETFILTER_DROP"


def test_an_unrelated_namespace_stays_silent(lab, pair, tracers) -> None:  # type: ignore[no-untyped-def]
    client, _server, _, _ = pair
    other_a, other_b = lab.netns("tcpx"), lab.netns("tcpy")
    lab.link(other_a, ["10.231.78.1/24"], other_b, ["10.231.78.2/24"])
    run = tcp_trace(tracers, "--netns", other_a.path)
    for _ in range(5):
        assert client.traffic("tcp", SERVER_V4, "81").strip() == "refused"
    run.settle()
    assert run.stop() == 0
    assert run.of_type("tcp") == []
    assert run.summary["seen"] == 0 and run.summary["peers"] == []


def test_a_connection_flood_is_counted_exactly(pair, tracers) -> None:  # type: ignore[no-untyped-def]
    client, _server, _, _ = pair
    attempts = 3000
    run = tcp_trace(tracers, "--netns", client.path)
    refused = int(client.exec(sys.executable, "-c", CLIENT_FLOOD, SERVER_V4, "88", str(attempts)))
    assert refused == attempts
    run.settle(1.0)
    assert run.stop() == 0
    summary = run.summary
    (peer,) = [p for p in summary["peers"] if p["port"] == 88]
    assert (peer["attempts"], peer["refused"]) == (attempts, attempts)
    assert summary["seen"] == attempts
    assert_exact(summary)
    assert len(lines(run, "REFUSED", dport=88)) == summary["events"] == attempts - summary["lost"]


def test_every_hook_is_attached_or_reported_missing() -> None:
    """The degraded mode, forced: a tracepoint 'absent' from the kernel goes
    to missing, and the rest still attach (this is what an old kernel sees)."""
    btf = libbpf.Btf.load_vmlinux()
    try:
        present = {h.btf_type for h in node.HOOKS if btf.find(h.btf_type, libbpf.BTF_KIND_TYPEDEF) > 0}
    finally:
        btf.free()
    hidden = "btf_trace_inet_sk_error_report"
    attached = loader.attach_available(node.OBJECT_PATH, node.HOOKS,
                                       kernel_has=lambda name: name in present and name != hidden,
                                       configure=node.check_layout, populate=lambda _obj: None)
    try:
        assert "tp_btf/inet_sk_error_report" in attached.missing
        assert "not in its BTF" in attached.missing["tp_btf/inet_sk_error_report"]
        assert set(attached.programs) | set(attached.missing) == {h.hook for h in node.HOOKS}
        assert "tp_btf/inet_sock_set_state" in attached.programs
        info = attached.info()
        assert dict(info.missing) == attached.missing and info.prog_id > 0
    finally:
        attached.close()


def test_preflight_names_what_this_kernel_lacks(tracers) -> None:  # type: ignore[no-untyped-def]
    run = tcp_trace(tracers, "--duration", "0.2")
    assert run.finish() == 0
    (preflight,) = run.of_type("preflight")
    btf = libbpf.Btf.load_vmlinux()
    try:
        lacking = {h.hook for h in node.HOOKS if btf.find(h.btf_type, libbpf.BTF_KIND_TYPEDEF) < 0}
    finally:
        btf.free()
    assert lacking <= set(preflight["missing_hooks"])
    assert set(preflight["hook"].split(",")) == {h.hook for h in node.HOOKS} - set(preflight["missing_hooks"])


def test_aggregate_counts_in_the_kernel_and_emits_peer_tables_only(pair, tracers) -> None:  # type: ignore[no-untyped-def]
    client, _server, _, _ = pair
    run = tcp_trace(tracers, "--netns", client.path, "--aggregate", "--interval", "0.2")
    refused = int(client.exec(sys.executable, "-c", CLIENT_FLOOD, SERVER_V4, "89", "200"))
    run.settle(0.6)
    assert run.stop() == 0
    assert refused == 200 and run.of_type("tcp") == []
    tables = run.of_type("peers")
    assert tables and tables[-1]["seen"] == 200
    (peer,) = [p for p in tables[-1]["peers"] if p["port"] == 89]
    assert (peer["attempts"], peer["refused"]) == (200, 200)
    summary = run.summary
    assert (summary["seen"], summary["suppressed"], summary["events"]) == (200, 200, 0)
    assert_exact(summary)
