"""Cache directory helpers: content keys, atomic "complete" stamps and archive writing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from typing import Sequence

DEFAULT_CACHE = "/var/cache/kubectl-bpf/kernels"


def log(message: str) -> None:
    """Progress goes to stderr so stdout carries only the final table."""
    print(f"[kernels] {message}", file=sys.stderr, flush=True)


def key(*parts: str) -> str:
    """A short, stable key for a cache entry built from these inputs."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def is_complete(directory: str) -> bool:
    """True when a previous build of this entry finished (it writes the stamp last)."""
    return os.path.exists(os.path.join(directory, ".complete"))


def mark_complete(directory: str) -> None:
    with open(os.path.join(directory, ".complete"), "w", encoding="ascii") as stamp:
        stamp.write("ok\n")


def nice(argv: Sequence[str]) -> list[str]:
    """Builds and VMs share two cores with other work: run them at lower priority."""
    return ["nice", "-n", "10", *argv]


def run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, failing loudly (the harness never skips what it cannot build)."""
    return subprocess.run(list(argv), check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def write_cpio(root: str, output: str) -> None:
    """Archive the tree at root as a gzip'd newc cpio owned by root (the initramfs format)."""
    tmp = output + ".tmp"
    with open(tmp, "wb") as out:
        find = subprocess.Popen(["find", ".", "-mindepth", "1"], cwd=root, stdout=subprocess.PIPE)
        cpio = subprocess.Popen(nice(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"]), cwd=root,
                                stdin=find.stdout, stdout=subprocess.PIPE)
        gzip = subprocess.Popen(nice(["gzip", "-1"]), stdin=cpio.stdout, stdout=out)
        assert find.stdout is not None and cpio.stdout is not None
        find.stdout.close()
        cpio.stdout.close()
        codes = (gzip.wait(), cpio.wait(), find.wait())
    if any(codes):
        os.unlink(tmp)
        raise RuntimeError(f"archiving {root} failed (gzip, cpio, find exit codes {codes})")
    os.replace(tmp, output)
