"""A small authoritative DNS server for the agent tests, run inside a test netns.

``python dns_server.py ADDR PORT`` answers on UDP and TCP:
- ``*.ok.test``, ``api.example.com`` and ``web.ns.svc.cluster.local``: an A (and AAAA)
  record; ``www.alias.test``: a CNAME to ``target.ok.test`` plus its A record;
- ``*.big.test``: 40 A records, more than fits in 512 bytes, so over UDP the answer is
  empty with TC set and the client retries over TCP, where it gets all of them;
- ``*.silent.test``: never answered;
- anything else: NXDOMAIN.
Every answer is delayed by the number of milliseconds in the DNS_DELAY_MS
environment variable (latency tests also delay packets with tc netem).
DNS_ANSWER (comma-separated names) adds names answered like ``*.ok.test``
(the e2e test's Service-like names in its own namespace).
Prints ``ready`` once both sockets listen.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time

A, AAAA, CNAME = 1, 28, 5
UDP_LIMIT = 512
BIG_ANSWERS = 40
ANSWERED = {"api.example.com", "web.ns.svc.cluster.local",
            *(name.strip().lower() for name in os.environ.get("DNS_ANSWER", "").split(",") if name.strip())}


def parse_question(data: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, qtype, end of question)."""
    ident, flags = struct.unpack_from("!HH", data)
    offset, labels = 12, []
    while data[offset]:
        length = data[offset]
        labels.append(data[offset + 1:offset + 1 + length].decode())
        offset += 1 + length
    qtype = struct.unpack_from("!H", data, offset + 1)[0]
    return ident, flags, ".".join(labels).lower(), qtype, offset + 5


def record(rtype: int, rdata: bytes, *, owner: bytes = b"\xc0\x0c") -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def answer(data: bytes, *, tcp: bool) -> bytes | None:
    ident, flags, name, qtype, end = parse_question(data)
    if name.endswith("silent.test"):
        return None
    question = data[12:end]
    rcode, records = 0, []
    if name.endswith(".ok.test") or name in ANSWERED:
        if qtype == A:
            records = [record(A, socket.inet_aton("192.0.2.10"))]
        elif qtype == AAAA:
            records = [record(AAAA, socket.inet_pton(socket.AF_INET6, "2001:db8::10"))]
    elif name == "www.alias.test":
        target = encode_name("target.ok.test")
        records = [record(CNAME, target)]
        if qtype == A:
            records.append(record(A, socket.inet_aton("192.0.2.11"), owner=target))
    elif name.endswith(".big.test"):
        if qtype == A:
            records = [record(A, bytes([192, 0, 2, index])) for index in range(1, BIG_ANSWERS + 1)]
    else:
        rcode = 3
    message = struct.pack("!HHHHHH", ident, 0x8400 | (flags & 0x0100) | rcode, 1, len(records), 0, 0)
    message += question + b"".join(records)
    if not tcp and len(message) > UDP_LIMIT:
        message = struct.pack("!HHHHHH", ident, 0x8600 | (flags & 0x0100), 1, 0, 0, 0) + question
    return message


def delay() -> None:
    time.sleep(int(os.environ.get("DNS_DELAY_MS", "0")) / 1000)


def serve_udp(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            reply = answer(data, tcp=False)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue  # the malformed packets the tests send
        if reply is not None:
            delay()
            sock.sendto(reply, peer)


def serve_tcp_client(conn: socket.socket) -> None:
    with conn:
        buffer = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack_from("!H", buffer)[0]:
                length = struct.unpack_from("!H", buffer)[0]
                data, buffer = buffer[2:2 + length], buffer[2 + length:]
                reply = answer(data, tcp=True)
                if reply is not None:
                    delay()
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


def serve_tcp(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_tcp_client, args=(conn,), daemon=True).start()


def main() -> None:
    address, port = sys.argv[1], int(sys.argv[2])
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((address, port))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, port))
    tcp.listen(16)
    threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
    print("ready", flush=True)
    serve_udp(udp)


if __name__ == "__main__":
    main()
