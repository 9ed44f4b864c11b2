"""Builders of DNS messages and IP packets for the dns gadget's unit tests."""

from __future__ import annotations

import socket
import struct


def name(text: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".") if label) + b"\0"


def message(ident: int = 0x1234, *, qname: str = "a.example", qtype: int = 1, response: bool = False,
            rcode: int = 0, tc: bool = False, answers: tuple[bytes, ...] = (),
            additional: tuple[bytes, ...] = (), ancount: int | None = None) -> bytes:
    flags = (0x8000 if response else 0) | (0x0200 if tc else 0) | 0x0100 | rcode
    header = struct.pack("!HHHHHH", ident, flags, 1, len(answers) if ancount is None else ancount, 0,
                         len(additional))
    return header + name(qname) + struct.pack("!HH", qtype, 1) + b"".join(answers) + b"".join(additional)


def rr(rtype: int, rdata: bytes, *, owner: bytes = b"\xc0\x0c", ttl: int = 60, rclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def a(address: str) -> bytes:
    return rr(1, socket.inet_aton(address))


def opt(udp_size: int = 1232, ext_rcode: int = 0, do: bool = False) -> bytes:
    return rr(41, b"", owner=b"\0", rclass=udp_size, ttl=ext_rcode << 24 | (0x8000 if do else 0))


def udp4(payload: bytes, *, src: str = "10.0.0.2", dst: str = "10.0.0.1", sport: int = 40000,
         dport: int = 53) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    return ip + udp


def udp6(payload: bytes, *, src: str = "fd00::2", dst: str = "fd00::1", sport: int = 40000,
         dport: int = 53) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, socket.inet_pton(socket.AF_INET6, src),
                     socket.inet_pton(socket.AF_INET6, dst))
    return ip + udp


def tcp4(payload: bytes, *, seq: int, flags: int = 0x18, src: str = "10.0.0.2", dst: str = "10.0.0.1",
         sport: int = 40000, dport: int = 53) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    return ip + tcp
