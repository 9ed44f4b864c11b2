"""``kubectl-bpf dns --local``: a client resolving through glibc with a pod's
resolv.conf (ndots:5, a search list) against a DNS server of the test's own.
Every lookup is reported with its rcode and answers, silence as UNANSWERED
with its retry, a truncated answer with its TCP retry, the search-list tries
as chains, latency as injected, and broken packets are counted, not fatal."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any, Callable, Iterator

import pytest

from tests.agent import netlab

pytestmark = pytest.mark.agent

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_V4, SERVER_V4 = "10.231.53.2", "10.231.53.1"
CLIENT_V6, SERVER_V6 = "fd00:231:53::2", "fd00:231:53::1"
SEARCH = ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local")
DELAY_MS = 200
SENDER = """
import socket, struct, sys
dst = sys.argv[1]
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    for payload in (b"", b"\\x01", b"not dns at all, just bytes", struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0),
                    struct.pack("!HHHHHH", 8, 0, 1, 0, 0, 0) + b"\\xc0\\x0c\\0\\1\\0\\1",
                    struct.pack("!HHHHHH", 9, 0, 1, 0, 0, 0) + b"\\x3fabc"):
        sock.sendto(payload, (dst, 53))
print("sent 6")
"""


class Resolver:
    """A process in the client netns, with /etc/netns/NAME/resolv.conf as its
    resolv.conf (ip netns exec bind-mounts it in its own mount namespace)."""

    def __init__(self, netns: netlab.Netns) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable,
                                      os.path.join(HERE, "resolver.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid  # ip netns exec execs the command in place

    def resolve(self, name: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        answered, result = self.proc.stdout.readline().split()
        assert answered == name
        return result

    def close(self) -> None:
        stop(self.proc)


@pytest.fixture
def dns_lab(lab: netlab.Lab) -> Iterator[Callable[..., tuple[netlab.Netns, Resolver]]]:
    """start(nameserver, delay_ms) -> (client netns, resolver): a server netns
    answering on both families, a client whose resolv.conf names it."""
    started: list[Any] = []
    etc_dirs: list[str] = []

    def start(nameserver: str = SERVER_V4, delay_ms: int = 0) -> tuple[netlab.Netns, Resolver]:
        server, client = lab.netns("dnssrv"), lab.netns("dnscli")
        server_dev, _ = lab.link(server, [f"{SERVER_V4}/24", f"{SERVER_V6}/64"],
                                 client, [f"{CLIENT_V4}/24", f"{CLIENT_V6}/64"])
        env = dict(os.environ)
        if delay_ms and not _netem(server, server_dev, delay_ms):
            env["DNS_DELAY_MS"] = str(delay_ms)  # no sch_netem in this kernel: delay in the server
        for address in (SERVER_V4, SERVER_V6):
            proc = subprocess.Popen(["ip", "netns", "exec", server.name, sys.executable,
                                     os.path.join(HERE, "dns_server.py"), address, "53"],
                                    stdout=subprocess.PIPE, text=True, env=env)
            started.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        etc = f"/etc/netns/{client.name}"
        os.makedirs(etc)
        etc_dirs.append(etc)
        with open(os.path.join(etc, "resolv.conf"), "w", encoding="ascii") as resolv:
            resolv.write(f"nameserver {nameserver}\nsearch {' '.join(SEARCH)}\n"
                         "options ndots:5 timeout:1 attempts:2\n")
        resolver = Resolver(client)
        started.append(resolver)
        return client, resolver

    yield start
    for item in started:
        if isinstance(item, Resolver):
            item.close()
        else:
            stop(item)
    for etc in etc_dirs:
        shutil.rmtree(etc, ignore_errors=True)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def _netem(namespace: netlab.Netns, dev: str, delay_ms: int) -> bool:
    """Delay every packet leaving the server; False where the kernel has no netem."""
    try:
        namespace.exec("tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", f"{delay_ms}ms")
    except RuntimeError:
        return False
    return True


def by_name(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        found.setdefault(record["name"], []).append(record)
    return found


def expanded(base: str) -> list[str]:
    return [f"{base}.{suffix}" for suffix in SEARCH]


def assert_exact(summary: dict[str, Any]) -> None:
    assert summary["packets_seen"] == summary["packets_received"] + summary["packets_lost"]
    assert summary["packets_lost"] == 0


def test_every_lookup_is_reported_with_rcode_answers_and_chain(dns_lab, trace) -> None:  # type: ignore[no-untyped-def]
    _client, resolver = dns_lab()
    running = trace("--pid", str(resolver.pid), "--timeout", "1.5", gadget="dns")
    assert resolver.resolve("a.ok.test") == "192.0.2.10"
    assert resolver.resolve("web.ns") == "192.0.2.10"
    assert resolver.resolve("missing.test") == "error:-2"  # EAI_NONAME
    assert resolver.resolve("x.silent.test").startswith("error:")
    assert resolver.resolve("www.alias.test") == "192.0.2.11"
    assert len(resolver.resolve("y.big.test").split(",")) == 40
    running.settle(2.0)  # the last chain ends once nothing follows it within the timeout
    assert running.stop() == 0
    lookups = running.of_type("dns")
    names = by_name(lookups)
    preflight = running.of_type("preflight")[0]
    assert preflight["hook"] == "socket_filter/AF_PACKET"

    # a.ok.test: three search tries, then answered as it is
    chain = [names[name][0] for name in [*expanded("a.ok.test"), "a.ok.test"]]
    assert [r["rcode"] for r in chain] == ["NXDOMAIN"] * 3 + ["NOERROR"]
    assert chain[-1]["answers"] == [{"name": "a.ok.test", "type": "A", "ttl": 60, "data": "192.0.2.10"}]
    info = chain[-1]["chain"]
    assert (info["base"], info["steps"], info["answered_by"], info["suffix"]) == (
        "a.ok.test", 4, "a.ok.test", None)
    assert info["names"] == [*expanded("a.ok.test"), "a.ok.test"]
    assert {r["chain"]["id"] for r in chain} == {info["id"]}
    assert 0 < info["wasted_ms"] <= info["total_ms"]
    for record in chain:
        assert (record["qtype"], record["server"], record["client_ip"], record["transport"]) == (
            "A", SERVER_V4, CLIENT_V4, "udp")
        assert record["latency_ms"] is not None and 0 < record["latency_ms"] < 500

    # web.ns: answered by the second suffix
    web = names["web.ns.svc.cluster.local"][0]
    assert names["web.ns.ns.svc.cluster.local"][0]["rcode"] == "NXDOMAIN"
    assert (web["rcode"], web["chain"]["suffix"], web["chain"]["steps"]) == (
        "NOERROR", "svc.cluster.local", 2)

    # missing.test: every try NXDOMAIN, a chain that no name answered
    missing = [names[name][0] for name in [*expanded("missing.test"), "missing.test"]]
    assert [r["rcode"] for r in missing] == ["NXDOMAIN"] * 4
    assert missing[-1]["chain"]["answered_by"] is None

    # x.silent.test: never answered; glibc's second attempt is grouped with the first
    (silent,) = names["x.silent.test"]
    assert (silent["rcode"], silent["latency_ms"], silent["retries"]) == ("UNANSWERED", None, 1)
    assert silent["chain"]["steps"] == 4 and silent["chain"]["answered_by"] is None

    # www.alias.test: the CNAME and the address it leads to
    alias = names["www.alias.test"][0]
    assert [(a["type"], a["data"]) for a in alias["answers"]] == [
        ("CNAME", "target.ok.test"), ("A", "192.0.2.11")]

    # y.big.test: TC over UDP, then all 40 answers over TCP, in one chain
    udp, tcp = names["y.big.test"]
    assert (udp["transport"], udp["truncated"], udp["answers"]) == ("udp", True, [])
    assert (tcp["transport"], tcp["truncated"], len(tcp["answers"]), tcp["rcode"]) == (
        "tcp", False, 40, "NOERROR")
    assert tcp["chain"]["id"] == udp["chain"]["id"] and tcp["chain"]["steps"] == 5

    summary = running.summary
    assert_exact(summary)
    assert summary["packets_malformed"] == 0
    assert summary["lookups"] == len(lookups) == 23
    assert summary["unanswered"] == 1 and summary["chains"] == 6
    assert summary["rcodes"] == {"NOERROR": 5, "NXDOMAIN": 17, "UNANSWERED": 1}
    (server,) = summary["servers"]
    assert server["key"] == f"{SERVER_V4}:53" and server["lookups"] == 23 and server["unanswered"] == 1


def test_latency_is_measured_as_injected(dns_lab, trace) -> None:  # type: ignore[no-untyped-def]
    _client, resolver = dns_lab(delay_ms=DELAY_MS)
    running = trace("--pid", str(resolver.pid), gadget="dns")
    assert resolver.resolve("fast.ok.test") == "192.0.2.10"
    running.settle(0.5)
    assert running.stop() == 0
    lookups = running.of_type("dns")
    assert len(lookups) == 4
    for record in lookups:
        assert DELAY_MS <= record["latency_ms"] < DELAY_MS + 150, record
    chain = lookups[-1]["chain"]
    assert chain["wasted_ms"] >= 3 * DELAY_MS
    (name,) = [tally for tally in running.summary["names"] if tally["key"] == "fast.ok.test"]
    assert DELAY_MS <= name["p50_ms"] == name["p99_ms"] < DELAY_MS + 150


def test_ipv6_server_and_malformed_packets_are_counted_not_fatal(dns_lab, trace) -> None:  # type: ignore[no-untyped-def]
    client, resolver = dns_lab(nameserver=SERVER_V6)
    running = trace("--pid", str(resolver.pid), gadget="dns")
    assert client.exec(sys.executable, "-c", SENDER, SERVER_V6).strip() == "sent 6"
    assert client.exec(sys.executable, "-c", SENDER, SERVER_V4).strip() == "sent 6"
    assert resolver.resolve("b.ok.test") == "192.0.2.10"
    running.settle(0.5)
    assert running.stop() == 0
    answered = [r for r in running.of_type("dns") if r["name"] == "b.ok.test"]
    assert len(answered) == 1
    assert (answered[0]["server"], answered[0]["client_ip"], answered[0]["rcode"]) == (
        SERVER_V6, CLIENT_V6, "NOERROR")
    summary = running.summary
    assert_exact(summary)
    # per family: empty, 1 byte, text, a header with a question missing, a pointer loop, a cut label
    assert summary["packets_malformed"] == 12
    assert running.of_type("end")[0]["status"] == "ok"



ASKER = """
import socket, struct, sys
dst, port = sys.argv[1], int(sys.argv[2])
name = b"\\x01a\\x02ok\\x04test\\x00"
query = struct.pack("!HHHHHH", 0x5353, 0x0100, 1, 0, 0, 0) + name + b"\\x00\\x01\\x00\\x01"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(2)
    for target in (53, port):  # nothing listens on 53 in this test: only the --port server answers
        sock.sendto(query, (dst, target))
    print(len(sock.recvfrom(512)[0]))
"""


def test_only_the_given_ports_are_captured(lab: netlab.Lab, trace) -> None:  # type: ignore[no-untyped-def]
    server, client = lab.netns("dnssrv"), lab.netns("dnscli")
    lab.link(server, [f"{SERVER_V4}/24"], client, [f"{CLIENT_V4}/24"])
    servers = [subprocess.Popen(["ip", "netns", "exec", server.name, sys.executable,
                                 os.path.join(HERE, "dns_server.py"), SERVER_V4, str(port)],
                                stdout=subprocess.PIPE, text=True) for port in (5353, 5454)]
    try:
        for proc in servers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        running = trace("--netns", client.path, "--port", "5353", "--timeout", "1", gadget="dns")
        assert int(client.exec(sys.executable, "-c", ASKER, SERVER_V4, "5353")) > 12
        assert int(client.exec(sys.executable, "-c", ASKER, SERVER_V4, "5454")) > 12  # not a DNS port here
        running.settle(1.5)
        assert running.stop() == 0
    finally:
        for proc in servers:
            stop(proc)
    lookups = running.of_type("dns")
    by_port = sorted((r["server_port"], r["rcode"], r["retries"]) for r in lookups)
    # First asker: its query to 53 (nothing listens) and the same query to 5353 are one lookup,
    # retried at another server as resolvers do, answered by 5353. Second asker: 53 again,
    # UNANSWERED; its query to 5454 is not a DNS port here and never seen.
    assert by_port == [(53, "UNANSWERED", 0), (5353, "NOERROR", 1)]
    assert all(r["chain"] is None for r in lookups)  # a netns file has no resolv.conf: no chains
