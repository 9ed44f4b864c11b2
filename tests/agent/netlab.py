"""Network namespaces, veths and nftables rules that a test creates and removes.

Every name carries a per-lab random id, so parallel or aborted runs never
collide, and every address lives only inside these namespaces.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from typing import Optional

TRAFFIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "traffic.py")


def run(*args: str, stdin: Optional[str] = None) -> str:
    result = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    @property
    def inode(self) -> int:
        return os.stat(self.path).st_ino

    def ip(self, *args: str) -> str:
        return run("ip", "-n", self.name, *args)

    def exec(self, *args: str) -> str:
        return run("ip", "netns", "exec", self.name, *args)

    def nft_drop(self, hook: str, match: str) -> None:
        """One nftables rule dropping `match` at `hook` (input, output, forward)."""
        ruleset = (f"table inet kbpf {{\n  chain {hook} {{\n"
                   f"    type filter hook {hook} priority 0;\n    {match} drop\n  }}\n}}\n")
        run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=ruleset)

    def sysctl(self, setting: str) -> None:
        self.exec("sysctl", "-qw", setting)

    def traffic(self, *args: str) -> str:
        """Run tests/agent/traffic.py inside this netns."""
        return self.exec(sys.executable, TRAFFIC, *args)


class Lab:
    def __init__(self) -> None:
        self.id = secrets.token_hex(3)
        self._namespaces: list[Netns] = []
        self._links = 0

    def netns(self, role: str) -> Netns:
        namespace = Netns(f"kbpf-{self.id}-{role}")
        run("ip", "netns", "add", namespace.name)
        self._namespaces.append(namespace)
        namespace.ip("link", "set", "lo", "up")
        # No duplicate address detection: link-local addresses would stay
        # tentative for ~1 s and neighbour discovery would fail meanwhile.
        for scope in ("all", "default"):
            namespace.sysctl(f"net.ipv6.conf.{scope}.accept_dad=0")
        return namespace

    def link(self, a: Netns, a_addrs: list[str], b: Netns, b_addrs: list[str]) -> tuple[str, str]:
        """A veth pair between two namespaces, with addresses (CIDR notation);
        IPv6 addresses skip DAD so they are usable at once."""
        self._links += 1
        a_dev, b_dev = f"k{self.id}{self._links}a", f"k{self.id}{self._links}b"
        run("ip", "link", "add", a_dev, "netns", a.name, "type", "veth", "peer", "name", b_dev,
            "netns", b.name)
        for namespace, dev, addrs in ((a, a_dev, a_addrs), (b, b_dev, b_addrs)):
            namespace.sysctl(f"net.ipv6.conf.{dev}.accept_dad=0")
            for addr in addrs:
                namespace.ip("addr", "add", addr, "dev", dev, *(["nodad"] if ":" in addr else []))
            namespace.ip("link", "set", dev, "up")
        for namespace, dev in ((a, a_dev), (b, b_dev)):
            # IPv6 is usable only once the link-local address is final and the
            # multicast route exists (a moment after carrier): until then
            # neighbour solicitations are dropped (IP_INNOROUTES).
            deadline = time.monotonic() + 5
            while (namespace.ip("-6", "addr", "show", "dev", dev, "tentative").strip()
                   or "ff00::/8" not in namespace.ip("-6", "route", "show", "table", "local", "dev", dev)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"IPv6 on {dev} in {namespace.name} is not ready after 5 s")
                time.sleep(0.02)
        return a_dev, b_dev

    def cleanup(self) -> None:
        for namespace in self._namespaces:
            subprocess.run(["ip", "netns", "del", namespace.name], capture_output=True, check=False)
        self._namespaces.clear()
