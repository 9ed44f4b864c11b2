"""drop_event bytes, packed by hand as the kernel writes them, decode into
the drop records of the protocol."""

from __future__ import annotations

import calendar
import pathlib
import socket
import struct
import time
from typing import Any

import pytest

from kubectl_bpf.agent import ksyms, reasons
from kubectl_bpf.gadgets.drops import node, schema

KALLSYMS = "ffffffff81200000 t __udp4_lib_rcv\nffffffffc0100000 t nft_do_chain\t[nf_tables]\n"
UDP4_LIB_RCV = 0xFFFFFFFF81200000
NETNS = 4026532000
REASONS = reasons.ReasonTable({"SKB_NOT_DROPPED_YET": 0, "SKB_CONSUMED": 1,
                               "SKB_DROP_REASON_NO_SOCKET": 3, "SKB_DROP_REASON_NETFILTER_DROP": 7},
                              {"SKB_DROP_REASON_SUBSYS_OPENVSWITCH": 2})


def v4(text: str) -> bytes:
    return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(text)


def v6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def pack_event(**fields: Any) -> bytes:
    """A drop_event; defaults are a UDP/IPv4 NO_SOCKET drop towards the target."""
    event = {"ts_ns": 1_000_000_000, "location": UDP4_LIB_RCV + 0x1A, "reason": 3, "netns": NETNS,
             "ifindex": 2, "iif": 2, "len": 60, "ethertype": 0x0800, "ip_proto": 17,
             "match": node.MATCH_DST_IP, "saddr": v4("10.0.0.1"), "daddr": v4("10.0.0.2"),
             "sport": 40000, "dport": 53, "has_ports": node.HAS_PORTS, "family": 4, "flags": 0,
             "ifname": b"eth0"}
    event.update(fields)
    return node.EVENT.pack(*event.values())


@pytest.fixture
def symbols(tmp_path: pathlib.Path) -> ksyms.Symbols:
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    loaded = ksyms.Symbols(str(path))
    loaded.load_in_background()
    return loaded


@pytest.fixture
def decoder(symbols: ksyms.Symbols) -> node.Decoder:
    return node.Decoder(REASONS, symbols)


def test_ipv4_udp_drop_decodes_every_field(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event())
    assert {key: value for key, value in record.items() if key != "time"} == {
        "reason": "NO_SOCKET", "reason_code": 3, "reason_source": "kernel",
        "location": "__udp4_lib_rcv+0x1a",
        "protocol": "UDP", "ip_proto": 17, "src": "10.0.0.1", "dst": "10.0.0.2",
        "sport": 40000, "dport": 53, "icmp_type": None, "icmp_code": None, "direction": "ingress",
        "netns": NETNS, "ifname": "eth0", "ifindex": 2, "len_bytes": 60}


def test_decoded_record_has_exactly_the_schema_fields(decoder: node.Decoder) -> None:
    assert set(decoder.decode(pack_event())) == set(schema.DropRecord.__annotations__)


def test_ipv4_is_read_from_the_v4_mapped_tail(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(saddr=v4("192.0.2.254"), daddr=v4("255.255.255.255")))
    assert (record["src"], record["dst"]) == ("192.0.2.254", "255.255.255.255")


def test_ipv6_tcp_drop_decodes_addresses_and_ports(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(family=6, ethertype=0x86DD, ip_proto=6, saddr=v6("fd00::1"),
                                       daddr=v6("2001:db8::abcd"), sport=443, dport=51000))
    assert (record["protocol"], record["ip_proto"]) == ("TCP", 6)
    assert (record["src"], record["dst"]) == ("fd00::1", "2001:db8::abcd")
    assert (record["sport"], record["dport"]) == (443, 51000)


def test_ipv6_with_a_v4_mapped_address_keeps_its_ipv6_form(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(family=6, ethertype=0x86DD, saddr=v6("::ffff:10.0.0.9")))
    assert record["src"] == "::ffff:10.0.0.9"


@pytest.mark.parametrize(("family", "ip_proto", "name"), [
    (4, 1, "ICMP"), (6, 58, "ICMPv6")])
def test_icmp_type_and_code_are_not_ports(decoder: node.Decoder, family: int, ip_proto: int,
                                          name: str) -> None:
    addresses = {"saddr": v6("fd00::1"), "daddr": v6("fd00::2")} if family == 6 else {}
    record = decoder.decode(pack_event(family=family, ip_proto=ip_proto, has_ports=node.HAS_ICMP,
                                       sport=3, dport=1, **addresses))
    assert record["protocol"] == name
    assert (record["icmp_type"], record["icmp_code"]) == (3, 1)
    assert (record["sport"], record["dport"]) == (None, None)


@pytest.mark.parametrize(("ip_proto", "name"), [(6, "TCP"), (17, "UDP"), (132, "SCTP"), (47, "other")])
def test_ip_protocol_names(decoder: node.Decoder, ip_proto: int, name: str) -> None:
    record = decoder.decode(pack_event(ip_proto=ip_proto))
    assert (record["protocol"], record["ip_proto"]) == (name, ip_proto)


def test_ip_packet_without_l4_header_has_no_ports(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(has_ports=0, sport=0, dport=0))  # e.g. a later fragment
    assert (record["sport"], record["dport"], record["icmp_type"]) == (None, None, None)
    assert record["src"] == "10.0.0.1"


def test_arp_drop_has_no_l3_fields(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(family=0, ethertype=0x0806, ip_proto=0, has_ports=0, sport=0,
                                       dport=0, saddr=b"\0" * 16, daddr=b"\0" * 16,
                                       match=node.MATCH_NETNS))
    assert record["protocol"] == "ARP"
    assert (record["ip_proto"], record["src"], record["dst"], record["sport"], record["dport"]) == (
        None, None, None, None, None)


def test_non_ip_non_arp_drop_is_other(decoder: node.Decoder) -> None:
    record = decoder.decode(pack_event(family=0, ethertype=0x88CC, ip_proto=0, has_ports=0,
                                       saddr=b"\0" * 16, daddr=b"\0" * 16))
    assert (record["protocol"], record["ip_proto"], record["src"]) == ("other", None, None)


def test_reason_names_come_from_the_table(decoder: node.Decoder) -> None:
    assert decoder.decode(pack_event(reason=7))["reason"] == "NETFILTER_DROP"
    assert decoder.decode(pack_event(reason=999))["reason"] == "UNKNOWN_999"
    record = decoder.decode(pack_event(reason=2 << 16 | 4))
    assert (record["reason"], record["reason_code"]) == ("OPENVSWITCH:4", 2 << 16 | 4)


def test_location_is_symbolized(decoder: node.Decoder) -> None:
    assert decoder.decode(pack_event(location=0xFFFFFFFFC01003E8))["location"] == "nft_do_chain+0x3e8"


# -- interface names -------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "name"), [
    (b"eth0", "eth0"),
    (b"eth0\0garbage-left", "eth0"),  # the kernel copies up to NUL; the rest is stale
    (b"veth1234567890ab", "veth1234567890ab"),  # 16 bytes, no NUL at all
    (b"\0" * 16, None),
    (b"\0stale", None),
    ("vethé".encode(), "vethé"),
])
def test_interface_name_stops_at_the_first_nul(decoder: node.Decoder, raw: bytes, name: str) -> None:
    assert decoder.decode(pack_event(ifname=raw))["ifname"] == name


def test_interface_names_stay_right_when_they_repeat(decoder: node.Decoder) -> None:
    sequence = [b"", b"eth0", b"", b"eth0", b"lo", b""]
    assert [decoder.decode(pack_event(ifname=raw))["ifname"] for raw in sequence] == [
        None, "eth0", None, "eth0", "lo", None]


def test_stale_bytes_after_the_name_do_not_grow_the_name_cache(decoder: node.Decoder) -> None:
    """Each event used to add a cache entry keyed by its 16 raw bytes (a leak of ~170 B/event)."""
    for index in range(1000):
        assert decoder.decode(pack_event(ifname=b"eth0\0" + index.to_bytes(4, "big")))["ifname"] == "eth0"
    assert len(decoder._ifnames) == 1


# -- time --------------------------------------------------------------------------------------------


@pytest.fixture
def fixed_clock_decoder(symbols: ksyms.Symbols, monkeypatch: pytest.MonkeyPatch) -> node.Decoder:
    """A decoder created when the wall clock read 2023-11-14T22:13:20Z and
    the monotonic clock 1000 s: the monotonic ts 1000.5 s is 2023-11-14T22:13:20.5Z."""
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    monkeypatch.setattr(time, "monotonic", lambda: 1000.0)
    return node.Decoder(REASONS, symbols)


def test_kernel_timestamp_becomes_iso_utc_with_microseconds(fixed_clock_decoder: node.Decoder) -> None:
    assert fixed_clock_decoder.wall_time(1000_500_000_000) == "2023-11-14T22:13:20.500000Z"
    assert fixed_clock_decoder.wall_time(1000_000_000_000) == "2023-11-14T22:13:20.000000Z"
    assert fixed_clock_decoder.wall_time(1000_250_000_000) == "2023-11-14T22:13:20.250000Z"


def test_wall_time_follows_seconds_back_and_forth(fixed_clock_decoder: node.Decoder) -> None:
    times = [fixed_clock_decoder.wall_time(ns) for ns in
             (1000_500_000_000, 1061_750_000_000, 1000_125_000_000, 87400_000_000_000)]
    assert times == ["2023-11-14T22:13:20.500000Z", "2023-11-14T22:14:21.750000Z",
                     "2023-11-14T22:13:20.125000Z", "2023-11-15T22:13:20.000000Z"]


def test_decoded_time_is_now_for_a_drop_happening_now(decoder: node.Decoder) -> None:
    text = decoder.decode(pack_event(ts_ns=time.monotonic_ns()))["time"]
    assert text.endswith("Z") and len(text) == len("2023-11-14T22:13:20.500000Z")
    seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float(text[19:-1])
    assert abs(seconds - time.time()) < 5


# -- direction ---------------------------------------------------------------------------------------

N, S, D = node.MATCH_NETNS, node.MATCH_SRC_IP, node.MATCH_DST_IP


@pytest.mark.parametrize(("match", "iif", "direction"), [
    (0, 0, "unknown"), (0, 3, "unknown"),
    (N, 3, "ingress"), (N, 0, "egress"),
    (S, 0, "egress"), (S, 3, "egress"),
    (D, 0, "ingress"), (D, 3, "ingress"),
    (N | S, 3, "egress"), (N | S, 0, "egress"),
    (N | D, 0, "ingress"), (N | D, 3, "ingress"),
    (S | D, 0, "ingress"), (S | D, 3, "ingress"),
    (N | S | D, 0, "ingress"), (N | S | D, 3, "ingress"),
])
def test_direction_for_every_match_combination(match: int, iif: int, direction: str) -> None:
    assert node.direction_of(match, iif) == direction


def test_match_bits_are_those_of_drops_h() -> None:
    header = (pathlib.Path(node.OBJECT_PATH).parent / "drops.h").read_text()
    for name, value in (("NETNS", N), ("SRC_IP", S), ("DST_IP", D)):
        assert f"#define DROPS_MATCH_{name} {value}\n" in header


def test_decoded_direction_uses_match_and_iif(decoder: node.Decoder) -> None:
    assert decoder.decode(pack_event(match=S))["direction"] == "egress"
    assert decoder.decode(pack_event(match=N, iif=0))["direction"] == "egress"
    assert decoder.decode(pack_event(match=N, iif=9))["direction"] == "ingress"


# -- per-CPU sums and flows ----------------------------------------------------------------------------


def test_percpu_counters_are_summed_field_by_field() -> None:
    cpus = [(10, 8, 1, 1, 0), (5, 5, 0, 0, 2), (7, 0, 3, 4, 0)]
    value = b"".join(node.COUNTERS.pack(*cpu) for cpu in cpus)
    assert node.sum_percpu(value, 5) == (22, 13, 4, 5, 2)


def test_percpu_single_counter_sums_every_cpu() -> None:
    assert node.sum_percpu(struct.pack("<4Q", 1, 2, 3, 2**40), 1) == (6 + 2**40,)


def test_percpu_sum_of_one_cpu_is_the_value() -> None:
    assert node.sum_percpu(node.COUNTERS.pack(1, 2, 3, 4, 5), 5) == (1, 2, 3, 4, 5)


def test_flow_key_decodes_with_ports_only_for_port_protocols(decoder: node.Decoder) -> None:
    tcp = node.FLOW.pack(v4("10.0.0.1"), v4("10.0.0.2"), 80, 6, 4, 3)
    icmp = node.FLOW.pack(v6("fd00::1"), v6("fd00::2"), 0, 58, 6, 7)
    arp = node.FLOW.pack(b"\0" * 16, b"\0" * 16, 0, 0, 0, 3)
    assert decoder.flow(tcp, 12) == {"src": "10.0.0.1", "dst": "10.0.0.2", "protocol": "TCP", "dport": 80,
                                     "reason": "NO_SOCKET", "count": 12}
    assert decoder.flow(icmp, 1) == {"src": "fd00::1", "dst": "fd00::2", "protocol": "ICMPv6",
                                     "dport": None, "reason": "NETFILTER_DROP", "count": 1}
    assert decoder.flow(arp, 2) == {"src": None, "dst": None, "protocol": "other", "dport": None,
                                    "reason": "NO_SOCKET", "count": 2}


def test_addr_key_is_the_kernels_address_form() -> None:
    assert node.addr_key("10.0.0.1") == v4("10.0.0.1")
    assert node.addr_key("fd00::1") == v6("fd00::1")
    assert len(node.addr_key("::")) == len(node.addr_key("0.0.0.0")) == 16


def test_non_ip_drop_after_an_ipv6_unspecified_source_has_no_addresses(decoder: node.Decoder) -> None:
    zero = b"\0" * 16
    solicitation = node.EVENT.pack(1, 0, 3, 1, 2, 2, 72, 0x86DD, 58, 1, zero,
                                   socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:1"), 135, 0, 2, 6, 0,
                                   b"eth0")
    arp = node.EVENT.pack(2, 0, 3, 1, 2, 2, 28, 0x0806, 0, 1, zero, zero, 0, 0, 0, 0, 0, b"eth0")
    assert decoder.decode(solicitation)["src"] == "::"
    record = decoder.decode(arp)
    assert (record["src"], record["dst"], record["protocol"]) == (None, None, "ARP")


def test_same_bytes_decode_per_family(decoder: node.Decoder) -> None:
    mapped = b"\0" * 10 + b"\xff\xff" + socket.inet_pton(socket.AF_INET, "10.1.2.3")
    assert decoder.address(mapped, 6) == "::ffff:10.1.2.3"
    assert decoder.address(mapped, 4) == "10.1.2.3"


def test_without_kernel_reasons_a_derived_reason_says_it_came_from_the_location(
        symbols: ksyms.Symbols) -> None:
    table = reasons.ReasonTable.from_locations()
    derived = node.Decoder(table, symbols)
    record = derived.decode(pack_event(reason=table.code("NO_SOCKET"), flags=node.FLAG_REASON_DERIVED))
    assert (record["reason"], record["reason_source"]) == ("NO_SOCKET", "location")
    unknown = derived.decode(pack_event(reason=0, flags=0))
    assert (unknown["reason"], unknown["reason_source"]) == ("UNKNOWN", None)
