"""The DNS decoder reads what resolvers send and refuses, by MalformedError
only, everything else: random bytes and mutated packets never raise another
exception."""

from __future__ import annotations

import contextlib
import random
import socket
import struct

import pytest

from kubectl_bpf.gadgets.dns import decode
from tests.unit.gadgets import dnswire


def test_query_fields_decode() -> None:
    message = decode.parse_message(dnswire.message(0xBEEF, qname="Api.Example.com", qtype=28,
                                                   additional=(dnswire.opt(1232, do=True),)))
    assert (message.id, message.response, message.name, message.qtype, message.qclass) == (
        0xBEEF, False, "Api.Example.com", 28, 1)
    assert message.edns == decode.Edns(udp_size=1232, version=0, dnssec_ok=True)
    assert message.recursion_desired and not message.truncated and not message.partial


def test_answers_a_aaaa_and_cname_decode_with_compression() -> None:
    target = dnswire.name("target.example")
    cname = dnswire.rr(5, target)
    # the A record's owner points at the CNAME's target inside the first answer's rdata
    offset_of_target = 12 + len(dnswire.name("www.example")) + 4 + 12
    pointer = struct.pack("!H", 0xC000 | offset_of_target)
    a_rr = dnswire.rr(1, socket.inet_aton("192.0.2.7"), owner=pointer)
    aaaa = dnswire.rr(28, socket.inet_pton(socket.AF_INET6, "2001:db8::7"))
    message = decode.parse_message(dnswire.message(qname="www.example", response=True,
                                                   answers=(cname, a_rr, aaaa)))
    assert [(x.name, x.type, x.data) for x in message.answers] == [
        ("www.example", "CNAME", "target.example"), ("target.example", "A", "192.0.2.7"),
        ("www.example", "AAAA", "2001:db8::7")]


def test_extended_rcode_comes_from_the_opt_record() -> None:
    message = decode.parse_message(dnswire.message(response=True, rcode=0,
                                                   additional=(dnswire.opt(ext_rcode=1),)))
    assert decode.rcode_name(message.rcode) == "BADVERS"
    nxdomain = decode.parse_message(dnswire.message(response=True, rcode=3))
    assert decode.rcode_name(nxdomain.rcode) == "NXDOMAIN"


def test_tc_bit_is_reported() -> None:
    assert decode.parse_message(dnswire.message(response=True, tc=True)).truncated


def test_a_compression_loop_is_malformed_not_a_hang() -> None:
    data = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\0\1\0\1"
    with pytest.raises(decode.MalformedError):
        decode.parse_message(data)


def test_a_cut_message_is_malformed_unless_the_capture_cut_it() -> None:
    full = dnswire.message(response=True, answers=(dnswire.a("192.0.2.1"), dnswire.a("192.0.2.2")))
    cut = full[:-3]
    with pytest.raises(decode.MalformedError):
        decode.parse_message(cut)
    partial = decode.parse_message(cut, complete=False)
    assert partial.partial and partial.answer_count == 2
    assert [x.data for x in partial.answers] == ["192.0.2.1"]
    with pytest.raises(decode.MalformedError):  # the question itself is needed either way
        decode.parse_message(full[:15], complete=False)


def test_ip_headers_of_both_families_decode() -> None:
    payload = dnswire.message()
    four = decode.parse_packet(dnswire.udp4(payload), decode.ETH_P_IP)
    assert (four.family, four.src, four.dst, four.sport, four.dport, four.transport, four.payload) == (
        4, "10.0.0.2", "10.0.0.1", 40000, 53, "udp", payload)
    six = decode.parse_packet(dnswire.udp6(payload), decode.ETH_P_IPV6)
    assert (six.family, six.src, six.dst, six.payload) == (6, "fd00::2", "fd00::1", payload)


def test_tcp_messages_are_reassembled_across_segments() -> None:
    streams = decode.Streams()
    first, second = dnswire.message(1), dnswire.message(2, qname="b.example")
    stream = struct.pack("!H", len(first)) + first + struct.pack("!H", len(second)) + second
    cut = len(first) + 5
    got = []
    for seq, chunk in ((1000, stream[:cut]), (1000 + cut, stream[cut:])):
        segment = decode.parse_packet(dnswire.tcp4(chunk, seq=seq), decode.ETH_P_IP)
        got += [payload for payload, _ in decode.messages_of(segment, streams, cut=False)]
    assert got == [first, second]
    # a retransmission adds nothing; a gap is counted and the next whole message still decodes
    again = decode.parse_packet(dnswire.tcp4(stream[cut:], seq=1000 + cut), decode.ETH_P_IP)
    assert decode.messages_of(again, streams, cut=False) == []
    late = 1000 + len(stream) + 100
    framed = struct.pack("!H", len(first)) + first
    segment = decode.parse_packet(dnswire.tcp4(framed, seq=late), decode.ETH_P_IP)
    assert decode.messages_of(segment, streams, cut=False) == [(first, False)]
    assert streams.gaps == 1


def _decode_all(data: bytes, ethertype: int, streams: decode.Streams) -> None:
    try:
        segment = decode.parse_packet(data, ethertype)
        for payload, cut in decode.messages_of(segment, streams, cut=False):
            decode.parse_message(payload, complete=not cut)
    except decode.MalformedError:
        pass


def test_random_bytes_never_raise_anything_but_malformed() -> None:
    rng = random.Random(12)
    streams = decode.Streams(max_flows=64)
    for _ in range(20000):
        data = rng.randbytes(rng.randrange(0, 120))
        with contextlib.suppress(decode.MalformedError):
            decode.parse_message(data, complete=rng.random() < 0.5)
        _decode_all(data, rng.choice((decode.ETH_P_IP, decode.ETH_P_IPV6, 0x0806)), streams)


def test_mutated_packets_never_raise_anything_but_malformed() -> None:
    rng = random.Random(7)
    streams = decode.Streams(max_flows=64)
    seeds = [dnswire.udp4(dnswire.message(response=True, answers=(dnswire.a("192.0.2.1"),),
                                          additional=(dnswire.opt(),))),
             dnswire.udp6(dnswire.message(qname="x.y.z", qtype=28)),
             dnswire.tcp4(struct.pack("!H", 30) + dnswire.message(), seq=5)]
    for _ in range(20000):
        packet = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        if rng.random() < 0.3:
            del packet[rng.randrange(len(packet)):]
        _decode_all(bytes(packet), decode.ETH_P_IPV6 if packet[:1] == b"\x60" else decode.ETH_P_IP, streams)
