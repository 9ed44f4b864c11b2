"""Fetch a Debian suite's cloud kernel with ``apt-get download`` into a private apt state.

The host's own sources, lists and package cache are never read or written: every apt
directory option points inside the cache, and the source list names only the suite asked for.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import tempfile

from tests.kernels import cache, matrix


@dataclasses.dataclass(frozen=True)
class KernelFiles:
    """A fetched kernel: its image and an initramfs archive with its modules."""

    release: str  # uname -r, e.g. 6.1.0-41-cloud-amd64
    package: str  # linux-image-6.1.0-41-cloud-amd64=6.1.158-1
    vmlinuz: str
    modules_cpio: str


def sources_list(suite: str) -> str:
    """The one-suite source list (main, -updates for bookworm and newer, -security)."""
    lines = [f"deb [signed-by={matrix.KEYRING}] {matrix.MIRROR} {suite} main",
             f"deb [signed-by={matrix.KEYRING}] {matrix.MIRROR} {suite}-updates main",
             f"deb [signed-by={matrix.KEYRING}] {matrix.SECURITY_MIRROR} {suite}-security main"]
    return "\n".join(lines) + "\n"


def apt_options(state: str) -> list[str]:
    """apt options that confine every apt read and write to the directory state."""
    return ["-o", f"Dir::State={state}/state", "-o", f"Dir::State::Lists={state}/lists",
            "-o", f"Dir::State::status={state}/status",
            "-o", f"Dir::Etc::sourcelist={state}/sources.list", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::Cache={state}/cache", "-o", "APT::Architecture=amd64",
            "-o", "APT::Architectures=amd64", "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root"]


def image_dependency(depends_output: str) -> str:
    """The versioned image package the metapackage depends on, from ``apt-cache depends``."""
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-cloud-amd64)\b", depends_output)
    if not match:
        raise RuntimeError(f"{matrix.META_PACKAGE} depends on no linux-image-*-cloud-amd64:\n"
                           f"{depends_output}")
    return match.group(1)


def candidate_version(policy_output: str) -> str:
    """The candidate version from ``apt-cache policy PACKAGE``."""
    match = re.search(r"Candidate: (\S+)", policy_output)
    if not match or match.group(1) == "(none)":
        raise RuntimeError(f"no candidate version:\n{policy_output}")
    return match.group(1)


def fetch(cache_dir: str, suite: str, refresh_lists: bool = False) -> KernelFiles:
    """Download, unpack and archive the suite's cloud kernel; cached by package version."""
    state = os.path.join(cache_dir, "apt", suite)
    for sub in ("state", "lists/partial", "cache/archives/partial"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    with open(os.path.join(state, "sources.list"), "w", encoding="ascii") as f:
        f.write(sources_list(suite))
    open(os.path.join(state, "status"), "a").close()
    opts = apt_options(state)
    if refresh_lists or not glob.glob(os.path.join(state, "lists", "*_Packages*")):
        cache.log(f"{suite}: apt-get update (private state {state})")
        cache.run(["apt-get", "-qq", *opts, "update"])
    depends = cache.run(["apt-cache", *opts, "depends", matrix.META_PACKAGE], capture_output=True).stdout
    package = image_dependency(depends)
    version = candidate_version(cache.run(["apt-cache", *opts, "policy", package],
                                          capture_output=True).stdout)
    release = package.removeprefix("linux-image-")
    entry = os.path.join(cache_dir, "kernel", f"{suite}-{release}-{version}")
    files = KernelFiles(release, f"{package}={version}", os.path.join(entry, "vmlinuz"),
                        os.path.join(entry, "modules.cpio.gz"))
    if cache.is_complete(entry):
        cache.log(f"{suite}: cached {package} {version}")
        return files
    shutil.rmtree(entry, ignore_errors=True)
    os.makedirs(entry)
    cache.log(f"{suite}: apt-get download {package}={version}")
    with tempfile.TemporaryDirectory(dir=entry) as work:
        cache.run(["apt-get", "-qq", *opts, "download", f"{package}={version}"], cwd=work)
        debs = glob.glob(os.path.join(work, "*.deb"))
        if len(debs) != 1:
            raise RuntimeError(f"apt-get download left {debs}, expected one .deb")
        tree = os.path.join(work, "tree")
        cache.run(["dpkg-deb", "-x", debs[0], tree])
        shutil.copyfile(os.path.join(tree, "boot", f"vmlinuz-{release}"), files.vmlinuz)
        modules_src = next(p for p in (os.path.join(tree, "usr/lib/modules", release),
                                       os.path.join(tree, "lib/modules", release)) if os.path.isdir(p))
        # Debian's rootfs has /lib -> usr/lib: modules must sit under usr/lib/modules.
        root = os.path.join(work, "root")
        os.makedirs(os.path.join(root, "usr/lib/modules"))
        shutil.move(modules_src, os.path.join(root, "usr/lib/modules", release))
        cache.run(["depmod", "-b", os.path.join(root, "usr"), release])
        cache.write_cpio(root, files.modules_cpio)
    cache.mark_complete(entry)
    return files
