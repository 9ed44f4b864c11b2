"""Send test traffic from inside a network namespace (run via `ip netns exec`).

    traffic.py udp DST PORT COUNT   COUNT datagrams, one socket (one source port)
    traffic.py tcp DST PORT         one connect; prints refused/timeout/connected
    traffic.py icmp DST 0 COUNT     COUNT ICMP echo requests (raw socket: root)
Bounded in count and time; only ever aimed at the test's own addresses.
"""

from __future__ import annotations

import socket
import sys


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def send_udp(dst: str, port: int, count: int) -> None:
    sent = 0
    with socket.socket(family_of(dst), socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            try:
                sock.sendto(b"kubectl-bpf test", (dst, port))
                sent += 1
            except OSError:
                sent += 1  # EPERM from an output drop rule: the packet was still dropped
    print(sent)


def connect_tcp(dst: str, port: int) -> None:
    with socket.socket(family_of(dst), socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect((dst, port))
            print("connected")
        except ConnectionRefusedError:
            print("refused")
        except OSError:
            print("timeout")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def send_icmp_echo(dst: str, count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        for seq in range(count):
            header = bytes([8, 0, 0, 0]) + (0x4B42).to_bytes(2, "big") + seq.to_bytes(2, "big")
            body = b"kubectl-bpf"
            packet = bytearray(header + body)
            packet[2:4] = checksum(bytes(packet)).to_bytes(2, "big")
            sock.sendto(bytes(packet), (dst, 0))
    print(count)


def main() -> None:
    mode, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "udp":
        send_udp(dst, port, int(sys.argv[4]))
    elif mode == "icmp":
        send_icmp_echo(dst, int(sys.argv[4]))
    elif mode == "tcp":
        connect_tcp(dst, port)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
