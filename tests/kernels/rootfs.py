"""The guest's root filesystem: a debootstrap of bookworm with what the agent tier needs.

Python test dependencies come from Debian packages (pytest, pytest-timeout, click, PyYAML,
tabulate), so no package index but Debian's is needed. Cached by a key over suite, mirror and
package list; the source tree travels in its own archive (``source_cpio``) so editing code
never rebuilds this.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from tests.kernels import cache, matrix

SUITE = "bookworm"
PACKAGES = ("python3", "libbpf1", "libelf1", "zlib1g", "iproute2", "nftables", "kmod", "procps", "bpftool",
            "util-linux", "python3-pytest", "python3-pytest-timeout", "python3-click", "python3-yaml",
            "python3-tabulate")
# Bump when the recipe below changes: it is part of the cache key.
RECIPE = 1
# Files the repository tracks that the guest needs, plus the compiled BPF objects.
SOURCE_PATHS = ("kubectl_bpf", "tests/conftest.py", "tests/agent", "tests/kernels",
                "pyproject.toml", "setup.py")


def build(cache_dir: str) -> str:
    """Return the path of the rootfs archive, building it on first use."""
    entry = os.path.join(cache_dir, "rootfs", f"{SUITE}-{cache.key(matrix.MIRROR, *PACKAGES, str(RECIPE))}")
    archive = os.path.join(entry, "rootfs.cpio.gz")
    if cache.is_complete(entry):
        cache.log(f"rootfs: cached {entry}")
        return archive
    shutil.rmtree(entry, ignore_errors=True)
    os.makedirs(entry)
    root = os.path.join(entry, "root")
    cache.log(f"rootfs: debootstrap --variant=minbase {SUITE} with {', '.join(PACKAGES)}")
    cache.run(cache.nice(["debootstrap", "--variant=minbase", "--arch=amd64", "--components=main",
                          f"--include={','.join(PACKAGES)}", SUITE, root, matrix.MIRROR]),
              stdout=subprocess.DEVNULL)
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                "usr/share/locale"):
        shutil.rmtree(os.path.join(root, rel), ignore_errors=True)
    with open(os.path.join(root, "init"), "w", encoding="ascii") as init:
        # The kernel runs /init as PID 1; the logic lives in tests/kernels/guest.py.
        init.write("#!/bin/sh\ncd /src && exec /usr/bin/python3 -m tests.kernels.guest\n")
    os.chmod(os.path.join(root, "init"), 0o755)
    cache.write_cpio(root, archive)
    shutil.rmtree(root)
    cache.mark_complete(entry)
    return archive


def source_cpio(repo: str, cache_dir: str, pytest_args: list[str]) -> str:
    """Archive the repository's tier sources under /src with the pytest arguments the guest runs
    (rebuilt on every run: it is small)."""
    staging = os.path.join(cache_dir, "src-staging")
    shutil.rmtree(staging, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for rel in SOURCE_PATHS:
        src, dest = os.path.join(repo, rel), os.path.join(staging, "src", rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(src):
            shutil.copytree(src, dest, ignore=ignore)
        else:
            shutil.copy2(src, dest)
    with open(os.path.join(staging, "src", ".pytest-args.json"), "w", encoding="utf-8") as f:
        json.dump(pytest_args, f)
    archive = os.path.join(cache_dir, "src.cpio.gz")
    cache.write_cpio(staging, archive)
    shutil.rmtree(staging)
    return archive
