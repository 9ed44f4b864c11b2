"""A client that resolves names through the system resolver (glibc reads
/etc/resolv.conf: search list, ndots, timeout), one per line of stdin, and
prints ``name address-or-error`` per line. Run it with ``ip netns exec``,
which also gives it /etc/netns/NAME/resolv.conf as its /etc/resolv.conf."""

from __future__ import annotations

import socket
import sys


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_DGRAM)
            result = ",".join(sorted({info[4][0] for info in infos}))
        except socket.gaierror as exc:
            result = f"error:{exc.errno}"
        print(f"{name} {result}", flush=True)


if __name__ == "__main__":
    main()
