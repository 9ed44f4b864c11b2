"""The human side of `drops`: endpoints, live table cells and the summary."""

from __future__ import annotations

import io
from typing import Any

import pytest

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.drops import output as command
from kubectl_bpf.gadgets.drops import schema


@pytest.mark.parametrize(("address", "port", "text"), [
    ("10.0.0.1", 53, "10.0.0.1:53"),
    ("10.0.0.1", None, "10.0.0.1"),
    ("fd00::1", 443, "[fd00::1]:443"),
    ("10.0.0.1", 0, "10.0.0.1:0"),
    (None, None, "-"),
    (None, 80, "-"),
])
def test_endpoint_joins_address_and_port(address: str, port: int, text: str) -> None:
    assert command.endpoint(address, port) == text


def test_clock_keeps_the_time_of_day_only() -> None:
    assert command.clock({"time": "2024-01-02T03:04:05.123456Z"}) == "03:04:05.123456"
    assert command.clock({}) == ""


def test_protocol_cell_shows_icmp_type_and_code() -> None:
    assert command.protocol_cell({"protocol": "ICMP", "icmp_type": 3, "icmp_code": 1}) == "ICMP/3:1"
    assert command.protocol_cell({"protocol": "ICMPv6", "icmp_type": 0, "icmp_code": 0}) == "ICMPv6/0:0"
    assert command.protocol_cell({"protocol": "UDP", "icmp_type": None}) == "UDP"


DROP: dict[str, Any] = {
    "time": "2024-01-02T03:04:05.123456Z", "reason": "NO_SOCKET", "reason_code": 3,
    "location": "__udp4_lib_rcv+0x1a", "protocol": "UDP", "ip_proto": 17, "src": "fd00::1",
    "dst": "fd00::2", "sport": 40000, "dport": 53, "icmp_type": None, "icmp_code": None,
    "direction": "ingress", "netns": 4026532000, "ifname": None, "ifindex": 2, "len_bytes": 60}


def test_live_table_prints_the_issue_columns_in_order() -> None:
    out = io.StringIO()
    table = render.LiveTable(command.live_columns(wide=False), out)
    table.row(DROP)
    header, row = out.getvalue().splitlines()
    assert header.split() == ["TIME", "DIR", "PROTO", "SRC", "DST", "REASON", "LOCATION"]
    assert row.split() == ["03:04:05.123456", "ingress", "UDP", "[fd00::1]:40000", "[fd00::2]:53",
                           "NO_SOCKET", "__udp4_lib_rcv+0x1a"]


def test_wide_table_adds_interface_netns_and_length_with_dash_for_none() -> None:
    out = io.StringIO()
    table = render.LiveTable(command.live_columns(wide=True), out)
    table.header()
    table.row(DROP)
    header, row = out.getvalue().splitlines()
    assert header.split()[-3:] == ["IFACE", "NETNS", "LEN"]
    assert row.split()[-3:] == ["-", "4026532000", "60"]


def test_live_table_aligns_rows_under_the_header() -> None:
    out = io.StringIO()
    table = render.LiveTable(command.live_columns(wide=False), out)
    table.row(DROP)
    table.row({**DROP, "src": "10.0.0.1", "sport": 1, "direction": "egress"})
    header, first, second = out.getvalue().splitlines()
    assert header.index("DIR") == first.index("ingress") == second.index("egress")
    assert header.index("REASON") == first.index("NO_SOCKET") == second.index("NO_SOCKET")


def test_every_column_field_is_a_drop_record_field() -> None:
    for _, field in schema.WIDE_COLUMNS:
        assert field in schema.DropRecord.__annotations__


SUMMARY: dict[str, Any] = {"drops": 10, "events": 7, "lost": 1, "suppressed": 2, "missed": 0,
                           "unaccounted": 0, "duration_s": 2.04, "reasons": {}, "flows": [],
                           "flow_count": 0, "flow_overflow": 0}


def test_summary_first_line_gives_exact_totals() -> None:
    assert command.summary_text(SUMMARY) == "10 drops in 2.0s: 7 shown, 2 suppressed, 1 lost"


def test_summary_mentions_kernel_misses_and_unaccounted_events_only_when_present() -> None:
    text = command.summary_text({**SUMMARY, "missed": 4, "unaccounted": 3})
    assert text == "10 drops in 2.0s: 7 shown, 2 suppressed, 1 lost, 4 missed by the kernel, 3 UNACCOUNTED"


def test_summary_lists_reasons_in_the_given_order() -> None:
    lines = command.summary_text({**SUMMARY, "reasons": {"NO_SOCKET": 8, "NETFILTER_DROP": 2}}).splitlines()
    assert lines[1] == ""
    assert [line.split() for line in lines[2:]] == [["REASON", "COUNT"], ["NO_SOCKET", "8"],
                                                    ["NETFILTER_DROP", "2"]]


def test_summary_lists_top_flows_and_how_many_more_there_are() -> None:
    flows = [{"src": "10.0.0.1", "dst": "10.0.0.2", "protocol": "UDP", "dport": 53, "reason": "NO_SOCKET",
              "count": 9},
             {"src": None, "dst": None, "protocol": "ARP", "dport": None, "reason": "NOT_SPECIFIED",
              "count": 1}]
    lines = command.summary_text({**SUMMARY, "flows": flows, "flow_count": 5}).splitlines()
    assert [line.split() for line in lines[2:5]] == [
        ["SRC", "DST", "PROTO", "DPORT", "REASON", "COUNT"],
        ["10.0.0.1", "10.0.0.2", "UDP", "53", "NO_SOCKET", "9"],
        ["-", "-", "ARP", "-", "NOT_SPECIFIED", "1"]]
    assert lines[-1] == "(+3 more flows)"


def test_summary_without_more_flows_says_nothing_more() -> None:
    flows = [{"src": "10.0.0.1", "dst": "10.0.0.2", "protocol": "TCP", "dport": 80, "reason": "X",
              "count": 1}]
    assert "more flows" not in command.summary_text({**SUMMARY, "flows": flows, "flow_count": 1})


def test_table_keeps_numeric_looking_text_verbatim() -> None:
    text = render.table(["A"], [["1.10"], ["007"]])
    assert text.split() == ["A", "1.10", "007"]
