#!/usr/bin/env python3
"""Build the agent image ``localhost/kubectl-bpf/agent:<version>`` without a registry.

Two layers, written as an OCI archive by ``images/base/build_oci.py`` (importable with
``ctr -n k8s.io images import``):

1. base: ``debootstrap --variant=minbase`` of the host's Debian suite with python3, libbpf1,
   libelf1 and zlib1g (the same packages as ``images/agent/Dockerfile``), upgraded from
   ``<suite>-updates`` and ``<suite>-security``, then stripped (apt, docs, man pages, locales,
   apt lists; no compilers). Built once and cached under ``<cache>/agent-base/`` keyed by
   suite, mirrors, architecture, package list and recipe version.
2. package: the kubectl_bpf wheel (``pip wheel --no-deps``: it carries the compiled CO-RE
   ``*.bpf.o``) installed with ``pip install --no-deps --target /usr/lib/python3/dist-packages``.

Python bytecode in both layers is compiled with ``--invalidation-mode unchecked-hash``: the
layers are written with fixed mtimes, which would make timestamp-checked ``.pyc`` files stale,
and the container's root filesystem is read-only, so Python could not rewrite them.

After a build the agent is run in the image's root filesystem (a read-only overlay of the two
layers, chroot, host /proc, /sys and /dev) for one second; it must print preflight, ready,
summary and end records. The archive goes to ``<cache>/images/agent-<version>.tar``; its path
is printed on stdout. When neither the base key nor the package sources changed, the existing
archive is kept (a no-op build takes well under a second).

Needs root (debootstrap, chroot, mounts), debootstrap, clang/llvm-strip (the BPF objects are
compiled by setup.py) and network access to the Debian mirror for the first base build.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Iterator, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "images", "base"))

import build_oci  # noqa: E402

IMAGE_REPO = "localhost/kubectl-bpf/agent"
# Keep in step with images/agent/Dockerfile (stage 2).
PACKAGES = ("python3", "libbpf1", "libelf1", "zlib1g")
# Bump when the base recipe (strip list, upgrade, compile step) changes: it is part of the key.
BASE_RECIPE = 1
SITE_DIR = "usr/lib/python3/dist-packages"
ENTRYPOINT = ["python3", "-m", "kubectl_bpf.agent"]
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "LANG": "C.UTF-8",
}
# Packages removed from the base when nothing installed still depends on them (the agent
# needs none of them): the package manager and what only it uses.
REMOVABLE = (
    "apt", "libapt-pkg6.0", "gpgv", "debian-archive-keyring", "libgnutls30", "libhogweed6",
    "libnettle8", "libp11-kit0", "libtasn1-6", "libidn2-0", "libunistring2", "libseccomp2",
    "libxxhash0", "libudev1", "libstdc++6", "libgcc-s1", "libsystemd0", "liblz4-1",
    "libgcrypt20", "libgpg-error0", "libzstd1",
)
# Emptied (the directories stay).
STRIP_DIRS = (
    "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/share/linda", "usr/share/bash-completion", "usr/share/bug", "usr/share/menu",
    "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf", "var/cache/ldconfig",
    "var/log", "tmp", "var/tmp", "root",
    "dev",  # device nodes come from the runtime (a tmpfs /dev), never from the image
)
# Parts of the Python standard library (under usr/lib/python3.X) nothing in the agent uses.
PY_STRIP = ("lib2to3", "pydoc_data", "ensurepip", "idlelib", "tkinter", "turtledemo", "test")
# Files in these source trees are put into the wheel (the rest of the repository is not).
WHEEL_SOURCES = ("setup.py", "pyproject.toml", "README.md", "kubectl_bpf")

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[build-agent-image +{time.monotonic() - T0:5.1f}s] {msg}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, **kw)


# --------------------------------------------------------------------------- host facts

def os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    with open("/etc/os-release", encoding="utf-8") as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep:
                out[k] = v.strip('"')
    return out


def host_suite() -> str:
    rel = os_release()
    if rel.get("ID") != "debian" or not rel.get("VERSION_CODENAME"):
        raise SystemExit("build-agent-image: the host is not Debian; set --suite (e.g. bookworm)")
    return rel["VERSION_CODENAME"]


def deb_arch() -> str:
    return run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()


def check_dockerfile() -> None:
    """images/agent/Dockerfile must install the same runtime packages as this builder."""
    path = os.path.join(HERE, "Dockerfile")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("ARG AGENT_PACKAGES="):
                pkgs = line.split("=", 1)[1].strip().strip('"').split()
                if sorted(pkgs) != sorted(PACKAGES):
                    raise SystemExit(f"build-agent-image: {path} installs {pkgs}, this builder "
                                     f"{list(PACKAGES)}: keep them the same")
                return
    raise SystemExit(f"build-agent-image: no ARG AGENT_PACKAGES= line in {path}")


def read_version(repo: str) -> str:
    with open(os.path.join(repo, "kubectl_bpf", "__init__.py"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise SystemExit("build-agent-image: no __version__ in kubectl_bpf/__init__.py")


# --------------------------------------------------------------------------- chroot helper

def in_root(root: str, argv: Sequence[str], *, binds: Sequence[tuple[str, str]] = (),
            env: Optional[dict[str, str]] = None, **kw) -> subprocess.CompletedProcess:
    """Run argv chrooted in root, in a private mount namespace with /proc, /sys and /dev.

    binds: (host path, existing directory inside root) pairs, bind-mounted (read-write) first.
    """
    script = ['set -e', 'r="$1"; shift']
    for i, (_src, dst) in enumerate(binds):
        script.append(f'mount --bind "${{B{i}}}" "$r{dst}"')
    script += ['mount -t proc proc "$r/proc"', 'mount --rbind /sys "$r/sys"',
               'mount --rbind /dev "$r/dev"', 'exec chroot "$r" "$@"']
    full_env = {"PATH": ENV["PATH"], "LANG": "C.UTF-8", "HOME": "/root",
                "DEBIAN_FRONTEND": "noninteractive"}
    full_env.update(env or {})
    for i, (src, _dst) in enumerate(binds):
        full_env[f"B{i}"] = src
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script),
                "sh", root, *argv], env=full_env, **kw)


# --------------------------------------------------------------------------- base layer

def base_key(suite: str, arch: str, mirror: str, security_mirror: str) -> str:
    desc = {"recipe": BASE_RECIPE, "suite": suite, "arch": arch, "mirror": mirror,
            "security_mirror": security_mirror, "packages": sorted(PACKAGES),
            "removable": sorted(REMOVABLE), "strip": sorted(STRIP_DIRS),
            "py_strip": sorted(PY_STRIP)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def _rm(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def _empty_dir(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            _rm(os.path.join(path, name))


def _remove_pycache(tree: str) -> None:
    for dirpath, dirnames, _files in os.walk(tree):
        if "__pycache__" in dirnames:
            shutil.rmtree(os.path.join(dirpath, "__pycache__"))
            dirnames.remove("__pycache__")


def _du_mb(root: str) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for fn in files:
            total += os.lstat(os.path.join(dirpath, fn)).st_size
    return total / 1e6


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _python_minor(root: str) -> str:
    """'3.11' for the python3 in root (from the /usr/bin/python3 symlink)."""
    target = os.readlink(os.path.join(root, "usr/bin/python3"))
    name = os.path.basename(target)
    if not name.startswith("python3."):
        raise SystemExit(f"build-agent-image: unexpected /usr/bin/python3 -> {target}")
    return name[len("python"):]


def strip_rootfs(root: str) -> None:
    """Remove the package manager (if nothing depends on it) and what the agent never reads."""
    remaining = list(REMOVABLE)
    for _ in range(len(remaining)):
        progress = False
        for pkg in list(remaining):
            res = in_root(root, ["dpkg", "--purge", "--force-remove-protected",
                                 "--force-remove-essential", pkg],
                          capture_output=True, text=True, check=False)
            if res.returncode == 0:
                remaining.remove(pkg)
                progress = True
            elif "not installed" in res.stderr or "isn't installed" in res.stderr:
                remaining.remove(pkg)
        if not progress:
            break
    if remaining:
        log(f"kept (still needed by an installed package): {' '.join(remaining)}")
    for d in STRIP_DIRS:
        _empty_dir(os.path.join(root, d))
    minor = _python_minor(root)
    for d in PY_STRIP:
        _rm(os.path.join(root, "usr/lib", f"python{minor}", d))
    # Documentation, except the copyright files (licences of what the image ships).
    doc = os.path.join(root, "usr/share/doc")
    if os.path.isdir(doc):
        for pkg in os.listdir(doc):
            pdir = os.path.join(doc, pkg)
            if not os.path.isdir(pdir) or os.path.islink(pdir):
                continue
            for name in os.listdir(pdir):
                if name != "copyright":
                    _rm(os.path.join(pdir, name))
    for rel in ("var/lib/dpkg/status-old", "var/lib/dpkg/available-old", "var/lib/dpkg/diversions-old",
                "etc/resolv.conf", "etc/hostname"):
        _rm(os.path.join(root, rel))
    with open(os.path.join(root, "etc/machine-id"), "w"):
        pass  # empty: one per container, not one per image


def build_base(cache: str, suite: str, arch: str, mirror: str, security_mirror: str, *,
               refresh: bool, times_file: Optional[str] = None) -> tuple[str, build_oci.Layer, str]:
    """Return (rootfs dir, base Layer, key); build and cache them if needed.

    A cold build appends a line to times_file (if given).
    """
    key = base_key(suite, arch, mirror, security_mirror)
    top = os.path.join(cache, "agent-base", f"{suite}-{arch}-{key}")
    rootfs, layer_path, stamp = (os.path.join(top, "rootfs"), os.path.join(top, "layer.tar.gz"),
                                 os.path.join(top, ".complete"))
    if not refresh and os.path.exists(stamp) and os.path.isdir(rootfs):
        log(f"base: cached {top}")
        return rootfs, build_oci.Layer.load(layer_path), key

    t0 = time.monotonic()
    if os.path.exists(top):
        shutil.rmtree(top)
    os.makedirs(top)
    log(f"base: debootstrap --variant=minbase {suite} ({arch}) with {', '.join(PACKAGES)}")
    run(["debootstrap", "--variant=minbase", f"--arch={arch}", "--components=main",
         f"--include={','.join(PACKAGES)}", suite, rootfs, mirror], stdout=sys.stderr)
    t_deb = time.monotonic() - t0

    log(f"base: upgrading from {suite}-updates and {suite}-security")
    with open(os.path.join(rootfs, "etc/apt/sources.list"), "w", encoding="utf-8") as f:
        f.write(f"deb {mirror} {suite} main\n"
                f"deb {mirror} {suite}-updates main\n"
                f"deb {security_mirror} {suite}-security main\n")
    shutil.copyfile("/etc/resolv.conf", os.path.join(rootfs, "etc/resolv.conf"))
    in_root(rootfs, ["apt-get", "-qq", "update"], stdout=sys.stderr)
    in_root(rootfs, ["apt-get", "-qq", "-y", "--no-install-recommends", "upgrade"], stdout=sys.stderr)
    in_root(rootfs, ["apt-get", "-qq", "clean"], stdout=sys.stderr)
    pkgs = in_root(rootfs, ["dpkg-query", "-W", "-f", "${Package} ${Version}\n"],
                   capture_output=True, text=True).stdout

    log("base: stripping (apt, docs, man pages, locales, apt lists)")
    strip_rootfs(rootfs)

    log("base: compiling the standard library (unchecked-hash .pyc)")
    minor = _python_minor(rootfs)
    _remove_pycache(os.path.join(rootfs, "usr/lib", f"python{minor}"))
    _remove_pycache(os.path.join(rootfs, SITE_DIR))
    in_root(rootfs, [f"python{minor}", "-m", "compileall", "-q", "-j", "0",
                     "--invalidation-mode", "unchecked-hash", f"/usr/lib/python{minor}",
                     "/" + SITE_DIR], stdout=sys.stderr)

    log("base: writing the layer")
    layer = build_oci.make_layer(rootfs)
    layer.save(layer_path)
    with open(os.path.join(top, "packages.txt"), "w", encoding="utf-8") as f:
        f.write(pkgs)
    line = (f"agent base {suite}/{arch} ({key}) built in {time.monotonic() - t0:.0f} s "
            f"(debootstrap {t_deb:.0f} s), layer {len(layer.blob) / 1e6:.1f} MB gzip, "
            f"rootfs {_du_mb(rootfs):.0f} MB, on {_utc_now()}\n")
    with open(os.path.join(top, "build-time.txt"), "w", encoding="utf-8") as f:
        f.write(line)
    if times_file:
        with open(times_file, "a", encoding="utf-8") as f:
            f.write(line)
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    log(f"base: built in {time.monotonic() - t0:.0f} s (debootstrap {t_deb:.0f} s), "
        f"layer {len(layer.blob) / 1e6:.1f} MB gzip")
    return rootfs, layer, key


# --------------------------------------------------------------------------- package layer

def copy_sources(repo: str, dest: str) -> str:
    """Copy what the wheel is built from into dest; return a hash of the copied files."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.bpf.o", "*.egg-info", "build")
    h = hashlib.sha256()
    for name in WHEEL_SOURCES:
        src = os.path.join(repo, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name), ignore=ignore)
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, name))
    for dirpath, dirnames, files in os.walk(dest):
        dirnames.sort()
        for fn in sorted(files):
            full = os.path.join(dirpath, fn)
            h.update(os.path.relpath(full, dest).encode() + b"\0")
            with open(full, "rb") as f:
                h.update(f.read())
            h.update(b"\0")
    return h.hexdigest()


def build_wheel(src: str, out: str) -> str:
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
            "-q", "-w", out, src]
    # Without build isolation when this interpreter can build the wheel itself (no download
    # of setuptools from PyPI); setuptools < 70.1 needs the separate `wheel` package for that.
    probe = ("import setuptools as s; v = tuple(int(x) for x in s.__version__.split('.')[:2]);\n"
             "if v < (70, 1): import wheel\nassert v >= (61, 0)")
    if run([sys.executable, "-c", probe], check=False, capture_output=True).returncode == 0:
        argv.insert(4, "--no-build-isolation")
    run(argv, stdout=sys.stderr)
    wheels = [f for f in os.listdir(out) if f.endswith(".whl")]
    if len(wheels) != 1:
        raise SystemExit(f"build-agent-image: expected one wheel in {out}, found {wheels}")
    return os.path.join(out, wheels[0])


def build_package_layer(wheel: str, layer_dir: str, base_rootfs: str) -> None:
    site = os.path.join(layer_dir, SITE_DIR)
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
         "--disable-pip-version-check", "--root-user-action=ignore", "-q", "--target", site,
         wheel], stdout=sys.stderr)
    _rm(os.path.join(site, "bin"))  # the kubectl-bpf CLI script: not for the node
    # direct_url.json records the (temporary) wheel path: drop it, for reproducible layers.
    for info in (d for d in os.listdir(site) if d.endswith(".dist-info")):
        _rm(os.path.join(site, info, "direct_url.json"))
        record = os.path.join(site, info, "RECORD")
        if os.path.exists(record):
            with open(record, encoding="utf-8") as f:
                lines = [x for x in f if not x.startswith(f"{info}/direct_url.json,")]
            with open(record, "w", encoding="utf-8") as f:
                f.writelines(lines)
    objs = [os.path.join(d, f) for d, _, fs in os.walk(site) for f in fs if f.endswith(".bpf.o")]
    if not objs:
        raise SystemExit("build-agent-image: the wheel has no *.bpf.o (is clang installed?)")
    # Compile with the image's own interpreter (bind-mounted into the base rootfs).
    minor = _python_minor(base_rootfs)
    in_root(base_rootfs, [f"python{minor}", "-m", "compileall", "-q", "--invalidation-mode",
                          "unchecked-hash", "-s", "/mnt", "-p", "/" + SITE_DIR, "/mnt"],
            binds=[(site, "/mnt")], stdout=sys.stderr)


# --------------------------------------------------------------------------- verification

def verify(base_rootfs: str, layer_dir: str, work: str) -> None:
    """Run the agent for one second in a read-only overlay of the two layers."""
    merged = os.path.join(work, "merged")
    os.makedirs(merged)
    spec = json.dumps({"gadget": "drops", "duration_s": 1})
    script = ('set -e; m="$1"; shift; '
              'mount -t overlay overlay -o "lowerdir=$LAYER:$BASE" "$m"; '
              'mount -t proc proc "$m/proc"; mount --rbind /sys "$m/sys"; '
              'mount -t tmpfs tmpfs "$m/dev"; for d in null zero random urandom; do '
              'touch "$m/dev/$d"; mount --bind "/dev/$d" "$m/dev/$d"; done; '
              'exec chroot "$m" "$@"')
    env = {"PATH": ENV["PATH"], "LANG": "C.UTF-8", "LAYER": layer_dir, "BASE": base_rootfs,
           "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    res = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
               merged, *ENTRYPOINT, "--spec", spec], env=env, capture_output=True, text=True,
              check=False, timeout=60)
    types = []
    end: dict = {}
    for line in res.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") != "drop":
            types.append(rec.get("type"))
        if rec.get("type") == "end":
            end = rec
    want = ["preflight", "ready", "summary", "end"]
    if res.returncode != 0 or [t for t in types if t in want] != want or end.get("status") != "ok":
        sys.stderr.write(res.stderr[-4000:])
        sys.stderr.write("\n".join(line for line in res.stdout.splitlines()
                                   if '"type":"drop"' not in line)[-4000:] + "\n")
        raise SystemExit(f"build-agent-image: the agent failed in the image's rootfs "
                         f"(exit {res.returncode}, records {types})")
    log(f"verified: the agent ran in the image rootfs ({', '.join(types)}; "
        f"{time.monotonic() - t0:.1f} s)")


# --------------------------------------------------------------------------- main

@contextlib.contextmanager
def build_dir(cache: str) -> Iterator[str]:
    """A fixed, emptied work directory, held under a lock for the whole build.

    Fixed because clang records the source path in the BTF line info of the .bpf.o: a random
    temporary directory would make every build's package layer differ.
    """
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".agent-build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        work = os.path.join(cache, "agent-build")
        if os.path.exists(work):
            shutil.rmtree(work)
        os.makedirs(work)
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=REPO, help="kubectl-bpf source tree (default: this one)")
    ap.add_argument("--cache", default=os.environ.get("KUBECTL_BPF_CACHE", "/var/cache/kubectl-bpf"))
    ap.add_argument("--suite", help="Debian suite (default: the host's VERSION_CODENAME)")
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--security-mirror", default="http://deb.debian.org/debian-security")
    ap.add_argument("--output", help="archive path (default <cache>/images/agent-<version>.tar)")
    ap.add_argument("--refresh-base", action="store_true", help="rebuild the cached base layer")
    ap.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    ap.add_argument("--no-verify", action="store_true", help="skip running the agent in the rootfs")
    ap.add_argument("--times-file", help="append cold build times here "
                    "(default <cache>/build-times.txt)")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        raise SystemExit("build-agent-image: must run as root (debootstrap, chroot, mounts)")
    check_dockerfile()
    version = read_version(args.repo)
    name = f"{IMAGE_REPO}:{version}"
    build_oci.validate_ref(name)
    suite = args.suite or host_suite()
    arch = deb_arch()
    output = args.output or os.path.join(args.cache, "images", f"agent-{version}.tar")

    times_file = args.times_file or os.path.join(args.cache, "build-times.txt")
    t_start = time.monotonic()
    base_stamp = os.path.join(args.cache, "agent-base",
                              f"{suite}-{arch}-{base_key(suite, arch, args.mirror, args.security_mirror)}",
                              ".complete")
    cold = args.refresh_base or not os.path.exists(base_stamp)
    rootfs, base_layer, key = build_base(args.cache, suite, arch, args.mirror, args.security_mirror,
                                         refresh=args.refresh_base, times_file=times_file)
    with build_dir(args.cache) as work:
        src = os.path.join(work, "src")
        os.makedirs(src)
        src_hash = copy_sources(args.repo, src)
        with open(__file__, "rb") as f1, open(build_oci.__file__, "rb") as f2:
            tools = hashlib.sha256(f1.read() + f2.read()).hexdigest()
        build_key = hashlib.sha256(f"{name} {key} {base_layer.digest} {src_hash} {tools} "
                                   f"{args.no_verify}".encode()).hexdigest()
        key_file = output + ".key"
        if not args.force and os.path.exists(output) and os.path.exists(key_file):
            with open(key_file, encoding="ascii") as f:
                if f.read().strip() == build_key:
                    log(f"{name}: up to date ({output})")
                    print(output)
                    return 0

        t0 = time.monotonic()
        log("package: pip wheel --no-deps (compiles the BPF objects)")
        wheel = build_wheel(src, os.path.join(work, "wheel"))
        layer_dir = os.path.join(work, "layer")
        log(f"package: installing {os.path.basename(wheel)} into /{SITE_DIR}")
        build_package_layer(wheel, layer_dir, rootfs)
        if not args.no_verify:
            verify(rootfs, layer_dir, work)

        labels = {"org.opencontainers.image.title": "kubectl-bpf agent",
                  "org.opencontainers.image.version": version,
                  "org.opencontainers.image.base.name": f"debian:{suite} (debootstrap minbase)",
                  "io.kubectl-bpf.base-key": key}
        res = build_oci.build_image([base_layer, layer_dir], name, output, entrypoint=ENTRYPOINT,
                                    env=ENV, workdir="/", labels=labels)
        with open(key_file + ".tmp", "w", encoding="ascii") as f:
            f.write(build_key + "\n")
        os.replace(key_file + ".tmp", key_file)
    size = os.path.getsize(output)
    log(f"{name}: built in {time.monotonic() - t0:.1f} s, archive {size / 1e6:.1f} MB "
        f"(config {res['config'][:19]})")
    if cold:
        with open(times_file, "a", encoding="utf-8") as f:
            f.write(f"agent image {name} built in {time.monotonic() - t_start:.0f} s from a cold "
                    f"cache (package layer {time.monotonic() - t0:.0f} s), archive "
                    f"{size / 1e6:.1f} MB, on {_utc_now()}\n")
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
