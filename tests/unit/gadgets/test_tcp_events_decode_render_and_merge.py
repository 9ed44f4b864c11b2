"""tcp_event bytes, packed as the kernel writes them, decode into tcp
records; tcp.h and its twins agree with the compiled object; failures
find their drop; rows, peers and parameters read as documented."""

from __future__ import annotations

import json
import re
import socket
import struct
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from kubectl_bpf.agent import libbpf
from kubectl_bpf.cli import root
from kubectl_bpf.gadgets.drops import cluster as drops_cluster
from kubectl_bpf.gadgets.tcp import cluster, node, output, params, schema
from kubectl_bpf.kube import targets

# C member names in declaration order, as node.Decoder.decode unpacks them.
EVENT_FIELDS = ("ts_ns", "duration_ns", "bytes_acked", "bytes_received", "saddr", "daddr", "netns",
                "reason", "retransmits", "sport", "dport", "kind", "state", "family", "direction",
                "reason_kind", "pad")
NETNS = 4026532100


def v4(text: str) -> bytes:
    return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(text)


def pack_event(**fields: Any) -> bytes:
    """A tcp_event; defaults: an outbound connect to 10.0.0.2:80 refused after 0.5 ms."""
    event = {"ts_ns": 1_000_000_000, "duration_ns": 500_000, "bytes_acked": 0, "bytes_received": 0,
             "saddr": v4("10.0.0.1"), "daddr": v4("10.0.0.2"), "netns": NETNS, "reason": 111,
             "retransmits": 0, "sport": 40000, "dport": 80, "kind": 2, "state": 2, "family": 4,
             "direction": 1, "reason_kind": node.REASON_ERRNO}
    event.update(fields)
    return node.EVENT.pack(*(event[name] for name in EVENT_FIELDS[:-1]))


@pytest.fixture
def decoder() -> node.Decoder:
    return node.Decoder({14: "TCP_STATE", 2: "NO_SOCKET"})


def test_a_refused_connect_decodes_with_its_errno_and_latency(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event())
    assert (record["event"], record["reason"], record["reason_code"]) == ("REFUSED", "ECONNREFUSED", 111)
    assert (record["src"], record["sport"]) == ("10.0.0.1", 40000)
    assert (record["dst"], record["dport"]) == ("10.0.0.2", 80)
    assert record["latency_ms"] == 0.5 and record["duration_ms"] is None
    assert record["state"] == "SYN_SENT" and record["direction"] == "outbound" and record["netns"] == NETNS
    assert record["bytes_acked"] is None and record["evidence"] is None
    assert record["time"].endswith("Z") and re.match(r"\d{4}-\d\d-\d\dT", record["time"])


def test_a_reset_names_the_kernel_reason_from_btf(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(kind=8, state=1, reason=14, reason_kind=node.REASON_RST,
                                       direction=2, bytes_acked=1, bytes_received=5, duration_ns=3_000_000))
    assert (record["event"], record["reason"], record["state"]) == ("RESET-SENT", "TCP_STATE", "ESTABLISHED")
    assert record["duration_ms"] == 3.0 and record["latency_ms"] is None
    assert (record["bytes_acked"], record["bytes_received"]) == (1, 5)
    unknown = decoder.decode(pack_event(kind=8, reason=99, reason_kind=node.REASON_RST))
    assert unknown["reason"] == "RST_REASON_99"
    none = decoder.decode(pack_event(kind=9, state=1, reason=0, reason_kind=node.REASON_NONE))
    assert none["reason"] is None and none["reason_code"] is None


def test_ipv6_addresses_decode_as_ipv6(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(family=6, saddr=socket.inet_pton(socket.AF_INET6, "fd00::1"),
                                       daddr=socket.inet_pton(socket.AF_INET6, "fd00::2")))
    assert (record["src"], record["dst"]) == ("fd00::1", "fd00::2")
    dual_stack = decoder.decode(pack_event(family=6, saddr=v4("10.0.0.1"), daddr=v4("10.0.0.2")))
    assert (dual_stack["src"], dual_stack["dst"]) == ("10.0.0.1", "10.0.0.2")


def test_latency_buckets_tile_the_line_and_percentiles_land_in_them() -> None:
    previous_high = 0
    for bucket in (*range(8), *range(24, node.LATENCY_BUCKETS)):
        low, high = node.bucket_bounds_us(bucket)
        if bucket >= 8:
            assert low == previous_high and (high - low) * 8 <= low  # 1/8 of the value or less
        previous_high = high
    histogram = [0] * node.LATENCY_BUCKETS
    histogram[8 * 16] = 99  # 65.5-69.6 ms
    histogram[8 * 20] = 1  # 1048-1180 ms
    assert 65 < (node.percentile_ms(tuple(histogram), 0.5) or 0) < 70
    assert 1048 < (node.percentile_ms(tuple(histogram), 0.999) or 0) < 1180
    assert node.percentile_ms((0,) * node.LATENCY_BUCKETS, 0.5) is None


def drop(**fields: Any) -> dict[str, Any]:
    record = {"protocol": "TCP", "src": "10.0.0.1", "sport": 40000, "dst": "10.0.0.2", "dport": 80,
              "reason": "NETFILTER_DROP", "reason_code": 7, "location": "nft_do_chain+0x3e8",
              "time": "2026-01-01T00:00:00.000000Z", "netns": 5, "ifname": "eth0"}
    record.update(fields)
    return record


def test_a_failure_finds_the_last_drop_of_its_flow_in_either_direction(decoder: node.Decoder) -> None:
    index = node.EvidenceIndex()
    index.add(drop(), 0.0)
    index.add(drop(), 1.0)
    index.add(drop(protocol="UDP"), 1.0)  # other protocols never explain TCP
    timeout = decoder.decode(pack_event(kind=3, reason=0, reason_kind=0, retransmits=1))
    evidence = index.explain(timeout, 2.0)
    assert evidence is not None
    assert (evidence["packet"], evidence["direction"], evidence["count"]) == ("SYN", "outbound", 2)
    index.add(drop(src="10.0.0.2", sport=80, dst="10.0.0.1", dport=40000, reason="TCP_INVALID"), 3.0)
    evidence = index.explain(timeout, 3.0)
    assert evidence is not None and (evidence["packet"], evidence["reason"]) == ("SYN-ACK", "TCP_INVALID")
    index.add(drop(reason="NOT_SPECIFIED"), 3.0)  # freed at close: the specific drop stays
    evidence = index.explain(timeout, 3.0)
    assert evidence is not None and (evidence["reason"], evidence["count"]) == ("TCP_INVALID", 4)
    assert index.explain(timeout, 3.0 + node.EVIDENCE_MAX_AGE_S + 1) is None
    other = decoder.decode(pack_event(sport=40001))
    assert index.explain(other, 3.0) is None


def test_the_evidence_index_is_bounded() -> None:
    index = node.EvidenceIndex(max_flows=2)
    for port in (1, 2, 3):
        index.add(drop(sport=port), 0.0)
    first = {"src": "10.0.0.1", "sport": 1, "dst": "10.0.0.2", "dport": 80, "event": "TIMEOUT", "state": None}
    assert index.explain(first, 0.0) is None  # type: ignore[arg-type]
    assert index.explain({**first, "sport": 3}, 0.0) is not None  # type: ignore[arg-type]


def test_a_row_explains_the_failure_and_names_the_drop_and_node() -> None:
    evidence = {"packet": "SYN", "reason": "NETFILTER_DROP", "location": "nft_do_chain+0x3e8", "count": 3}
    row = {"event": "TIMEOUT", "latency_ms": 2003.0, "retransmits": 2, "evidence": evidence}
    assert output.detail(row) == ("3 SYNs, gave up after 2.0s; "
                                  "SYN dropped: NETFILTER_DROP at nft_do_chain+0x3e8 (x3)")
    assert output.detail({**row, "evidence_node": "node-1"}).endswith("(x3, on node-1)")
    assert output.detail({"event": "CONNECTED", "latency_ms": 0.42, "retransmits": 0}) == "0.420ms"
    assert output.detail({"event": "REFUSED", "latency_ms": 0.3, "retransmits": 0,
                          "reason": "ECONNREFUSED"}) == "in 0.300ms"
    assert output.detail({"event": "RESET-SENT", "reason": "TCP_STATE", "duration_ms": 12.0,
                          "bytes_acked": 1, "bytes_received": 5}) == (
        "reason TCP_STATE, after 12.0ms, 1B acked/5B received")
    assert output.detail({"event": "RETRANSMIT", "retransmits": 4}) == "4 retransmits"


def test_preflight_lines_warn_of_each_missing_hook() -> None:
    payload = {"target": {"whole_host": True}, "hook": "tp_btf/inet_sock_set_state,tp_btf/tcp_send_reset",
               "kernel": "5.10.0", "missing_hooks": {"tp_btf/inet_sk_error_report": "no such tracepoint"}}
    first, warning = output.describe_preflight(payload)
    assert "2 tracepoints" in first and "kernel 5.10.0" in first
    assert warning == "kubectl-bpf: warning: not traced: tp_btf/inet_sk_error_report: no such tracepoint"


def test_the_summary_states_the_exact_accounting() -> None:
    summary = {"seen": 10, "duration_s": 2.0, "events": 7, "suppressed": 2, "lost": 1, "unaccounted": 0,
               "events_by_kind": {"REFUSED": 7}, "evidence": True, "drops": 4, "reasons": {"NO_SOCKET": 4},
               "peers": [{"peer": "10.0.0.2", "port": 80, "direction": "outbound", "attempts": 7,
                          "established": 0, "refused": 7, "timeouts": 0, "resets": {"sent:NO_SOCKET": 1},
                          "retransmits": 0, "latency_p50_ms": None, "latency_p99_ms": None}],
               "peer_count": 3}
    text = output.summary_text(summary)
    assert text.startswith("10 tcp events in 2.0s: 7 shown, 2 folded or suppressed, 1 lost")
    assert "10.0.0.2:80" in text and "sent:NO_SOCKET=1" in text and "(+2 more peers)" in text
    assert "4 drops of the traced flows" in text


def test_params_validate_and_round_trip() -> None:
    with pytest.raises(ValueError, match="power of two"):
        params.TcpParams(ring_bytes=5000)
    with pytest.raises(ValueError, match="gap"):
        params.TcpParams(retransmit_gap_s=-1)
    with pytest.raises(ValueError, match="top peers"):
        params.TcpParams(top_peers=0)
    chosen = params.TcpParams(aggregate=True, evidence=False, retransmit_gap_s=0.5)
    assert params.TcpParams.from_dict(chosen.to_dict()) == chosen


@pytest.mark.parametrize(("args", "message"), [
    (["tcp"], "name a target"),
    (["tcp", "--local", "web-1"], "--local traces this host"),
    (["tcp", "--ip", "10.0.0.1", "web-1"], "need --local"),
    (["tcp", "--local", "--ring-kib", "100"], "not a power of two"),
    (["tcp", "--local", "-o", "yaml"], "yaml output is for --dry-run"),
])
def test_cli_refuses_inconsistent_flags_with_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(root.cli, args)
    assert result.exit_code == 2 and message in result.output


def test_peers_merge_across_nodes_by_pod_and_peer() -> None:
    pod = targets.PodTarget(namespace="shop", name="web-1", uid="u", node="n1", ips=("10.0.0.1",),
                            container_ids=("c" * 64,), host_network=False, phase="Running")
    index = drops_cluster.PodIndex([targets.NodeGroup(node="n1", pods=(pod,), whole_node=False)],
                                   {"10.0.0.2": "shop/db-0"})
    peer = {"peer": "10.0.0.2", "port": 5432, "direction": "outbound", "netns": NETNS, "attempts": 3,
            "established": 2, "refused": 1, "resets": {"received": 1}, "latency_p50_ms": 1.0}
    merged = cluster.merge_peers({"n1": {"peers": [peer, {**peer, "latency_p50_ms": 3.0}]}}, index, 10)
    (row,) = merged
    assert (row["pod"], row["peer"], row["port"]) == ("shop/web-1", "shop/db-0", 5432)
    assert (row["attempts"], row["established"], row["refused"]) == (6, 4, 2)
    assert row["resets"] == {"received": 2} and row["latency_p50_ms"] == 3.0


@pytest.fixture(scope="module")
def btf() -> Iterator[libbpf.Btf]:
    parsed = libbpf.Btf.parse(node.OBJECT_PATH)
    yield parsed
    parsed.free()


def test_tcp_h_and_its_twins_agree_with_the_compiled_object(btf: libbpf.Btf) -> None:
    obj = libbpf.Object(node.OBJECT_PATH)
    try:
        node.check_layout(obj)  # raises on any size mismatch
    finally:
        obj.close()
    members = btf.struct_members(btf.find("tcp_event", libbpf.BTF_KIND_STRUCT))
    assert [name for name, _ in members] == list(EVENT_FIELDS)
    order, body = node.EVENT.format[0], node.EVENT.format[1:]
    offsets, prefix = [], ""
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", body):
        offsets.append(struct.calcsize(order + prefix))
        prefix += count + code
    assert [bits // 8 for _, bits in members] == offsets
    assert len(schema.EVENTS) == 11  # TCP_EV_* in tcp.h run 1..11


def cluster_view(output_format: str) -> cluster.TcpClusterOutput:
    pod = targets.PodTarget(namespace="shop", name="web-1", uid="u", node="n1", ips=("10.0.0.1",),
                            container_ids=("c" * 64,), host_network=False, phase="Running")
    index = drops_cluster.PodIndex([targets.NodeGroup(node="n1", pods=(pod,), whole_node=False)],
                                   {"10.0.0.2": "shop/db-0"})
    return cluster.TcpClusterOutput(index, output=output_format, aggregate=False)


def stream(decoder: node.Decoder) -> list[dict[str, Any]]:
    timeout = dict(decoder.decode(pack_event(kind=3, reason=0, reason_kind=0, retransmits=1,
                                             duration_ns=2_000_000_000)))
    timeout["evidence"] = {"packet": "SYN", "direction": "outbound", "reason": "NETFILTER_DROP",
                           "reason_code": 7, "location": "nft_do_chain+0x3e8", "time": "t", "netns": 9,
                           "ifname": "eth0", "count": 2}
    return [
        {"type": "preflight", "agent_version": "0.1.0", "kernel": "6.1", "hook": "tp_btf/x",
         "target": {"containers": {"c" * 64: NETNS}}},
        {"type": "ready", "prog_id": 7},
        {"type": "tcp", **timeout},
        {"type": "summary", "seen": 1, "events": 1, "lost": 0, "suppressed": 0, "missed": 0, "unaccounted": 0,
         "drops": 2, "duration_s": 3.0, "events_by_kind": {"TIMEOUT": 1}, "reasons": {"NETFILTER_DROP": 2},
         "evidence": True, "peers": [{"peer": "10.0.0.2", "port": 80, "direction": "outbound",
                                      "netns": NETNS, "attempts": 1, "timeouts": 1, "retransmits": 1}]},
    ]


def test_cluster_json_rows_gain_node_pod_peer_and_the_evidence_node(
        decoder: node.Decoder, capsys: pytest.CaptureFixture[str]) -> None:
    view = cluster_view("json")
    for record in stream(decoder):
        view.handle("n1", record)
    view.flush()
    view.finish()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (row,) = [r for r in rows if r["type"] == "tcp"]
    assert (row["node"], row["pod"], row["peer"]) == ("n1", "shop/web-1", "shop/db-0")
    assert row["evidence_node"] == "n1"
    assert row["event"] == "TIMEOUT" and row["evidence"]["reason"] == "NETFILTER_DROP"


def test_cluster_table_shows_the_row_and_the_merged_peer_summary(
        decoder: node.Decoder, capsys: pytest.CaptureFixture[str]) -> None:
    view = cluster_view("table")
    for record in stream(decoder):
        view.handle("n1", record)
    view.flush()
    view.finish()
    captured = capsys.readouterr()
    assert "n1: tracing (BPF program id 7)" in captured.err
    (row,) = [line for line in captured.out.splitlines() if "TIMEOUT" in line and "shop/web-1" in line]
    assert "SYN dropped: NETFILTER_DROP at nft_do_chain+0x3e8 (x2, on n1)" in row
    assert "1 tcp events in 3.0s: 1 shown" in captured.out
    (peer_row,) = [line for line in captured.out.splitlines() if "shop/db-0:80" in line]
    assert peer_row.split()[:4] == ["shop/web-1", "shop/db-0:80", "outbound", "1"]
