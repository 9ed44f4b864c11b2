"""The DNS wire format and the IP/UDP/TCP headers around it, decoded strictly.

Pure: bytes in, values out, no I/O. Anything that does not parse raises
MalformedError, which the caller counts and skips; no input, however
random, raises anything else (the unit tests feed it random bytes). A
message cut short by the capture's snap length is not malformed: what was
captured of its answers is kept and ``partial`` says the rest is missing.

TCP carries DNS with a two-byte length prefix and may split or join
messages across segments, so each TCP direction is reassembled (Streams).
"""

from __future__ import annotations

import collections
import dataclasses
import socket
import struct
from typing import NamedTuple, Optional

UDP, TCP = "udp", "tcp"
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PROTO_TCP, PROTO_UDP = 6, 17
IPV6_EXTENSIONS = (0, 43, 44, 60)  # hop-by-hop, routing, fragment, destination options
MAX_EXTENSIONS = 4  # as the kernel filter
TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04
HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")
QTYPE_CLASS = struct.Struct("!HH")
MAX_POINTERS = 32  # compression pointers followed per name: a loop is malformed, not a hang
MAX_NAME = 255  # octets on the wire (RFC 1035 3.1)
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_AAAA, TYPE_OPT = 1, 2, 5, 12, 28, 41
TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
         33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB",
         65: "HTTPS", 99: "SPF", 252: "AXFR", 255: "ANY", 257: "CAA"}
CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}
# Printable label bytes kept as they are; the rest as \DDD (RFC 4343 presentation format).
PLAIN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/+=@:"
PLAIN = frozenset(PLAIN_BYTES)


class MalformedError(ValueError):
    """Bytes that are not what they claim to be; the reason is for counting."""


class _Cut(MalformedError):
    """The data ended inside a record: truncated, by the sender or the capture."""


def type_name(number: int) -> str:
    return TYPES.get(number, f"TYPE{number}")


def class_name(number: int) -> str:
    return CLASSES.get(number, f"CLASS{number}")


def rcode_name(number: int) -> str:
    return RCODES.get(number, f"RCODE{number}")


class Segment(NamedTuple):
    """One IP packet's transport part. seq and flags only for TCP."""

    family: int  # 4 or 6
    src: str
    dst: str
    sport: int
    dport: int
    transport: str  # UDP or TCP
    payload: bytes
    seq: int = 0
    flags: int = 0


def parse_packet(data: bytes, ethertype: int) -> Segment:
    """An IP packet starting at its network header (what a SOCK_DGRAM packet
    socket delivers); ethertype is the link layer's protocol."""
    if ethertype == ETH_P_IP:
        if len(data) < 20 or data[0] >> 4 != 4:
            raise MalformedError("short or not IPv4")
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        if ihl < 20 or total < ihl or len(data) < ihl:
            raise MalformedError("bad IPv4 header length")
        if struct.unpack_from("!H", data, 6)[0] & 0x1FFF:
            raise MalformedError("IPv4 fragment")
        proto, family, offset = data[9], 4, ihl
        src = socket.inet_ntop(socket.AF_INET, data[12:16])
        dst = socket.inet_ntop(socket.AF_INET, data[16:20])
        end = min(len(data), total)
    elif ethertype == ETH_P_IPV6:
        if len(data) < 40 or data[0] >> 4 != 6:
            raise MalformedError("short or not IPv6")
        proto, family, offset = data[6], 6, 40
        src = socket.inet_ntop(socket.AF_INET6, data[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, data[24:40])
        end = min(len(data), 40 + struct.unpack_from("!H", data, 4)[0])
        for _ in range(MAX_EXTENSIONS):
            if proto not in IPV6_EXTENSIONS:
                break
            if len(data) < offset + 8:
                raise MalformedError("short IPv6 extension header")
            if proto == 44 and struct.unpack_from("!H", data, offset + 2)[0] & 0xFFF8:
                raise MalformedError("IPv6 fragment")
            proto, length = data[offset], 8 if proto == 44 else (data[offset + 1] + 1) * 8
            offset += length
    else:
        raise MalformedError(f"ethertype {ethertype:#06x} is not IP")
    if proto == PROTO_UDP:
        if end < offset + 8:
            raise MalformedError("short UDP header")
        sport, dport, length = struct.unpack_from("!HHH", data, offset)
        if length < 8:
            raise MalformedError("bad UDP length")
        payload_end = min(end, offset + length)
        return Segment(family, src, dst, sport, dport, UDP, bytes(data[offset + 8:payload_end]))
    if proto == PROTO_TCP:
        if end < offset + 20:
            raise MalformedError("short TCP header")
        sport, dport, seq = struct.unpack_from("!HHI", data, offset)
        header = (data[offset + 12] >> 4) * 4
        if header < 20 or end < offset + header:
            raise MalformedError("bad TCP header length")
        return Segment(family, src, dst, sport, dport, TCP, bytes(data[offset + header:end]),
                       seq=seq, flags=data[offset + 13])
    raise MalformedError(f"IP protocol {proto} is neither UDP nor TCP")


class Answer(NamedTuple):
    name: str
    type: str
    ttl: int
    data: str  # the address, the target name, or "<N bytes>" for types not decoded


class Edns(NamedTuple):
    udp_size: int
    version: int
    dnssec_ok: bool


class Message(NamedTuple):
    id: int
    response: bool
    opcode: int
    authoritative: bool
    truncated: bool  # TC: the answer did not fit, the client should retry over TCP
    recursion_desired: bool
    recursion_available: bool
    rcode: int  # with the EDNS extended bits
    name: str  # of the first question; "" when there is none
    qtype: int
    qclass: int
    questions: int
    answer_count: int  # ANCOUNT as sent
    answers: tuple[Answer, ...]  # the ones decoded: all of them unless partial
    edns: Optional[Edns]
    partial: bool  # the capture ended before the message did


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at offset, and the offset just past it in the record. Bounded:
    at most MAX_POINTERS jumps, and every label adds to the 255-octet limit."""
    labels: list[bytes] = []
    end = -1
    wire = hops = 0
    size = len(data)
    while True:
        if offset >= size:
            raise _Cut("name runs past the data")
        length = data[offset]
        if length == 0:
            break
        if length >= 0xC0:
            if offset + 1 >= size:
                raise _Cut("cut compression pointer")
            target = (length & 0x3F) << 8 | data[offset + 1]
            if end < 0:
                end = offset + 2
            hops += 1
            if target >= offset or hops > MAX_POINTERS:
                raise MalformedError("compression pointer does not point backwards")
            offset = target
            continue
        if length & 0xC0:
            raise MalformedError(f"label type {length >> 6:#x}")
        wire += length + 1
        if wire > MAX_NAME:
            raise MalformedError("name longer than 255 octets")
        start, offset = offset + 1, offset + 1 + length
        if offset > size:
            raise _Cut("label runs past the data")
        labels.append(data[start:offset])
    after = end if end >= 0 else offset + 1
    if not labels:
        return ".", after
    raw = b".".join(labels)
    if len(raw.translate(None, PLAIN_BYTES)) == len(labels) - 1:  # only the joining dots left: all plain
        return raw.decode("ascii"), after
    return ".".join(_label(label) for label in labels), after


def _label(raw: bytes) -> str:
    return "".join(chr(byte) if byte in PLAIN else f"\\{byte:03d}" for byte in raw)


def _rdata(data: bytes, rtype: int, start: int, length: int) -> str:
    if rtype == TYPE_A and length == 4:
        return socket.inet_ntop(socket.AF_INET, data[start:start + 4])
    if rtype == TYPE_AAAA and length == 16:
        return socket.inet_ntop(socket.AF_INET6, data[start:start + 16])
    if rtype in (TYPE_CNAME, TYPE_NS, TYPE_PTR):
        target, end = _name(data, start)
        if end != start + length:
            raise MalformedError(f"{type_name(rtype)} name does not fill its record")
        return target
    if rtype in (TYPE_A, TYPE_AAAA):
        raise MalformedError(f"{type_name(rtype)} record of {length} bytes")
    return f"<{length} bytes>"


def parse_message(data: bytes, *, complete: bool = True) -> Message:
    """One DNS message. complete=False: the capture may have cut it, so running
    out of data after the question gives a partial message, not an error."""
    if len(data) < HEADER.size:
        raise MalformedError("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    offset = HEADER.size
    name, qtype, qclass = "", 0, 0
    try:
        for index in range(qdcount):
            question, offset = _name(data, offset)
            if offset + 4 > len(data):
                raise _Cut("cut question")
            if index == 0:
                name = question
                qtype, qclass = QTYPE_CLASS.unpack_from(data, offset)
            offset += 4
    except _Cut as exc:
        raise MalformedError(f"truncated question: {exc}") from None
    answers: list[Answer] = []
    edns: Optional[Edns] = None
    rcode = flags & 0x0F
    partial = False
    try:
        for index in range(ancount + nscount + arcount):
            owner, offset = _name(data, offset)
            if offset + RR_FIXED.size > len(data):
                raise _Cut("cut resource record")
            rtype, rclass, ttl, length = RR_FIXED.unpack_from(data, offset)
            offset += RR_FIXED.size
            if offset + length > len(data):
                raise _Cut("resource data runs past the data")
            if index < ancount:
                answers.append(Answer(owner, type_name(rtype), ttl, _rdata(data, rtype, offset, length)))
            elif rtype == TYPE_OPT and edns is None and index >= ancount + nscount:
                rcode |= (ttl >> 24) << 4
                edns = Edns(udp_size=rclass, version=ttl >> 16 & 0xFF, dnssec_ok=bool(ttl & 0x8000))
            offset += length
    except _Cut as exc:
        if complete:
            raise MalformedError(f"truncated message: {exc}") from None
        partial = True
    return Message(id=ident, response=bool(flags & 0x8000), opcode=flags >> 11 & 0x0F,
                   authoritative=bool(flags & 0x0400), truncated=bool(flags & 0x0200),
                   recursion_desired=bool(flags & 0x0100), recursion_available=bool(flags & 0x0080),
                   rcode=rcode, name=name, qtype=qtype, qclass=qclass, questions=qdcount,
                   answer_count=ancount, answers=tuple(answers), edns=edns, partial=partial)


FlowKey = tuple[str, int, str, int]  # src, sport, dst, dport of one TCP direction


@dataclasses.dataclass
class _Stream:
    next_seq: int
    buffer: bytearray


class Streams:
    """DNS over TCP, reassembled per direction: segments in, whole messages
    out. A gap (a lost or cut segment) throws that direction's buffer away and
    is counted; the flow resynchronises at its next segment. At most
    max_flows directions are tracked; the oldest is dropped beyond that."""

    MAX_BUFFER = 2 + 65535  # one length prefix and the largest message

    def __init__(self, max_flows: int = 4096) -> None:
        self._flows: collections.OrderedDict[FlowKey, _Stream] = collections.OrderedDict()
        self._max_flows = max_flows
        self.gaps = 0

    def feed(self, segment: Segment, *, cut: bool = False) -> list[bytes]:
        """Messages completed by this segment. cut: the capture lost its tail."""
        key = (segment.src, segment.sport, segment.dst, segment.dport)
        if segment.flags & (TCP_RST | TCP_SYN):
            self._flows.pop(key, None)
            if segment.flags & TCP_RST or not segment.payload:
                return []
        payload = segment.payload
        stream = self._flows.get(key)
        if stream is None:
            if not payload:
                return []
            stream = self._flows[key] = _Stream(segment.seq, bytearray())
            while len(self._flows) > self._max_flows:
                self._flows.popitem(last=False)
        delta = (segment.seq - stream.next_seq) & 0xFFFFFFFF
        if delta and delta < 0x80000000:
            self.gaps += 1  # a segment is missing: what is buffered cannot be completed
            stream.buffer.clear()
            stream.next_seq = segment.seq
            delta = 0
        if delta:  # retransmission of bytes already seen: keep only what is new
            overlap = 0x100000000 - delta
            payload = payload[overlap:]
        stream.buffer += payload
        stream.next_seq = (stream.next_seq + len(payload)) & 0xFFFFFFFF
        messages = []
        while len(stream.buffer) >= 2:
            length = stream.buffer[0] << 8 | stream.buffer[1]
            if len(stream.buffer) < 2 + length:
                break
            messages.append(bytes(stream.buffer[2:2 + length]))
            del stream.buffer[:2 + length]
        if cut or len(stream.buffer) > self.MAX_BUFFER:
            # The real end of a cut segment is unknown: start over at the next one.
            self.gaps += 1
            self._flows.pop(key, None)
        elif segment.flags & TCP_FIN:
            self._flows.pop(key, None)
        return messages


def messages_of(segment: Segment, streams: Streams, *, cut: bool) -> list[tuple[bytes, bool]]:
    """The DNS payloads a segment carries, each with whether it may be cut."""
    if segment.transport == UDP:
        return [(segment.payload, cut)]
    return [(message, False) for message in streams.feed(segment, cut=cut)]
