#!/usr/bin/env python3
"""Build OCI image archives without a registry, docker or buildah (Python stdlib only).

The output is an OCI image layout packed in a tar (oci-layout, index.json, blobs/sha256/...)
that `ctr -n k8s.io images import FILE` accepts. Every image carries a fully qualified name
(``localhost/kubectl-bpf/<name>:<tag>``) in the ``io.containerd.image.name`` annotation and
the tag in ``org.opencontainers.image.ref.name``. Archives are reproducible: fixed mtimes
(SOURCE_DATE_EPOCH, default 0), uid/gid 0, sorted entries, gzip without timestamps.

Library use (e.g. by an agent-image builder)::

    from build_oci import build_image
    build_image("/path/to/rootfs", "localhost/kubectl-bpf/agent:0.1.0", "agent.tar",
                entrypoint=["/usr/bin/agent"], cmd=[], env={"PATH": "/usr/bin:/bin"})

``build_image`` also accepts a list of layers (bottom first): rootfs directories, or
``Layer`` objects prepared once with ``make_layer`` and cached with ``Layer.save``/``Layer.load``
(so a large, unchanging base layer is not re-tarred and re-compressed on every build).

Command line::

    build_oci.py pause   --out DIR          # localhost/kubectl-bpf/pause:3.10
    build_oci.py busybox --out DIR          # localhost/kubectl-bpf/busybox:1
    build_oci.py all     --out DIR          # both; prints the archive paths
    build_oci.py inspect FILE...            # prints "path<TAB>name<TAB>config digest" of archives
    build_oci.py image --rootfs DIR --name REF --output FILE
        [--entrypoint JSON] [--cmd JSON] [--env K=V ...] [--workdir DIR] [--user U]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from typing import Iterable, Mapping, Sequence, Union

HERE = os.path.dirname(os.path.abspath(__file__))

PAUSE_IMAGE = "localhost/kubectl-bpf/pause:3.10"
BUSYBOX_IMAGE = "localhost/kubectl-bpf/busybox:1"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_INDEX = "application/vnd.oci.image.index.v1+json"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def _goarch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def validate_ref(ref: str) -> tuple[str, str]:
    """Return (repository, tag) of a fully qualified reference; refuse ':latest' and bare names."""
    if "@" in ref:
        raise ValueError(f"{ref!r}: digest references are not supported here")
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"{ref!r}: give an explicit tag (never rely on ':latest')")
    if tag == "latest":
        raise ValueError(f"{ref!r}: ':latest' is not allowed; use a version tag")
    first = repo.split("/", 1)[0]
    if "/" not in repo or not ("." in first or ":" in first or first == "localhost"):
        raise ValueError(f"{ref!r}: use a fully qualified name such as localhost/kubectl-bpf/x:1")
    if repo != repo.lower():
        raise ValueError(f"{ref!r}: repository must be lower case")
    return repo, tag


# --------------------------------------------------------------------------- layers

def _walk_sorted_sub(path: str, rel: str) -> Iterable[tuple[str, str]]:
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        arc = f"{rel}/{name}"
        yield full, arc
        if os.path.isdir(full) and not os.path.islink(full):
            yield from _walk_sorted_sub(full, arc)


def layer_tar_from_dir(rootfs: str) -> bytes:
    """Return an uncompressed, reproducible tar of rootfs (contents at the archive root)."""
    if not os.path.isdir(rootfs):
        raise FileNotFoundError(f"rootfs {rootfs!r} is not a directory")
    mtime = _epoch()
    buf = io.BytesIO()
    seen_inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for full, dot_arc in _walk_sorted_sub(rootfs, "."):
            arc = dot_arc[2:]  # strip "./"
            st = os.lstat(full)
            ti = tarfile.TarInfo(arc)
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = mtime
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(full)
                tar.addfile(ti)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen_inodes:
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = seen_inodes[key]
                    tar.addfile(ti)
                    continue
                seen_inodes[key] = arc
                ti.type = tarfile.REGTYPE
                ti.size = st.st_size
                with open(full, "rb") as f:
                    tar.addfile(ti, f)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(ti)
            elif stat.S_ISFIFO(st.st_mode):
                ti.type = tarfile.FIFOTYPE
                tar.addfile(ti)
            # sockets are skipped
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0, filename="") as g:
        g.write(data)
    return out.getvalue()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclasses.dataclass(frozen=True)
class Layer:
    """A prepared layer: the gzip blob and the digest of the uncompressed tar (the diff_id)."""

    blob: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return _sha256(self.blob)

    def save(self, path: str) -> None:
        """Write the blob to path and the diff_id to path + '.diffid' (atomically, blob first)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        for target, data in ((path, self.blob), (path + ".diffid", self.diff_id.encode())):
            tmp = f"{target}.tmp{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)

    @classmethod
    def load(cls, path: str) -> Layer:
        with open(path, "rb") as f:
            blob = f.read()
        with open(path + ".diffid", encoding="ascii") as f:
            diff_id = f.read().strip()
        if not diff_id.startswith("sha256:"):
            raise ValueError(f"{path}.diffid: not a sha256 digest")
        return cls(blob, diff_id)


def make_layer(rootfs: str) -> Layer:
    """Tar (reproducibly) and gzip a rootfs directory into a Layer."""
    raw = layer_tar_from_dir(rootfs)
    return Layer(_gzip(raw), _sha256(raw))


def inspect_archive(path: str) -> dict:
    """Name, manifest and config digest of the (first) image in an archive build_image wrote."""
    with tarfile.open(path) as tar:
        def read(arc: str) -> dict:
            f = tar.extractfile(arc)
            if f is None:
                raise ValueError(f"{path}: {arc} is not a file")
            return json.loads(f.read())
        index = read("index.json")
        desc = index["manifests"][0]
        manifest = read("blobs/sha256/" + desc["digest"].split(":", 1)[1])
    return {"name": desc.get("annotations", {}).get("io.containerd.image.name", ""),
            "manifest": desc["digest"], "config": manifest["config"]["digest"],
            "output": os.path.abspath(path)}


# --------------------------------------------------------------------------- image

def build_image(
    rootfs: Union[str, Layer, Sequence[Union[str, Layer]]],
    name: str,
    output: str,
    *,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Mapping[str, str] | Sequence[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    stop_signal: str | None = None,
    arch: str | None = None,
) -> dict:
    """Build one image from rootfs directory(ies) and write an OCI layout tar to output.

    rootfs: a directory or a Layer, or a list of them (one layer each, bottom first).
    name: fully qualified reference with an explicit tag (e.g. localhost/kubectl-bpf/x:1).
    env: a mapping or a list of "K=V"; PATH defaults to a standard value if not given.
    Returns a dict with name, manifest digest, config digest (the image ID) and output path.
    """
    _repo, tag = validate_ref(name)
    layers_dirs = [rootfs] if isinstance(rootfs, (str, Layer)) else list(rootfs)
    if not layers_dirs:
        raise ValueError("need at least one rootfs layer")

    if env is None:
        env_list: list[str] = []
    elif isinstance(env, Mapping):
        env_list = [f"{k}={v}" for k, v in env.items()]
    else:
        env_list = list(env)
    if not any(e.startswith("PATH=") for e in env_list):
        env_list.insert(0, f"PATH={DEFAULT_PATH}")

    blobs: dict[str, bytes] = {}
    layer_descs = []
    diff_ids = []
    for d in layers_dirs:
        layer = d if isinstance(d, Layer) else make_layer(d)
        dg = layer.digest
        blobs[dg] = layer.blob
        diff_ids.append(layer.diff_id)
        layer_descs.append({"mediaType": MT_LAYER_GZIP, "digest": dg, "size": len(layer.blob)})

    created = "1970-01-01T00:00:00Z" if _epoch() == 0 else \
        datetime.datetime.fromtimestamp(_epoch(), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config: dict = {"Env": env_list}
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        config["Cmd"] = list(cmd)
    if workdir:
        config["WorkingDir"] = workdir
    if user:
        config["User"] = user
    if labels:
        config["Labels"] = dict(labels)
    if stop_signal:
        config["StopSignal"] = stop_signal
    image_config = {
        "created": created,
        "architecture": arch or _goarch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "kubectl-bpf images/base/build_oci.py"}
                    for _ in layers_dirs],
    }
    config_bytes = _json(image_config)
    config_digest = _sha256(config_bytes)
    blobs[config_digest] = config_bytes

    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": layer_descs,
    }
    manifest_bytes = _json(manifest)
    manifest_digest = _sha256(manifest_bytes)
    blobs[manifest_digest] = manifest_bytes

    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "platform": {"architecture": image_config["architecture"], "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }
    _write_layout_tar(output, blobs, index)
    return {"name": name, "manifest": manifest_digest, "config": config_digest,
            "output": os.path.abspath(output)}


def _write_layout_tar(output: str, blobs: Mapping[str, bytes], index: dict) -> None:
    mtime = _epoch()
    os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
    tmp = f"{output}.tmp{os.getpid()}"

    def add(tar: tarfile.TarFile, arc: str, data: bytes | None) -> None:
        ti = tarfile.TarInfo(arc)
        ti.mtime = mtime
        ti.uid = ti.gid = 0
        if data is None:
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tar.addfile(ti)
        else:
            ti.mode = 0o644
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
        add(tar, "index.json", _json(index))
        add(tar, "blobs", None)
        add(tar, "blobs/sha256", None)
        for dg in sorted(blobs):
            add(tar, "blobs/sha256/" + dg.split(":", 1)[1], blobs[dg])
    os.replace(tmp, output)


# --------------------------------------------------------------------------- base images

def _find_busybox() -> str:
    for p in (os.environ.get("BUSYBOX", ""), "/bin/busybox", "/usr/bin/busybox"):
        if p and os.path.isfile(p):
            out = subprocess.run(["file", "-L", p], check=False, capture_output=True,
                                 text=True).stdout \
                if shutil.which("file") else ""
            if out and "dynamically linked" in out:
                continue
            return p
    raise FileNotFoundError("busybox-static not found (apt-get install busybox-static)")


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _base_files(root: str) -> None:
    for d in ("etc", "tmp", "proc", "sys", "dev", "run", "var/tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.chmod(os.path.join(root, "var/tmp"), 0o1777)
    _write(os.path.join(root, "etc/passwd"),
           "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    _write(os.path.join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n")
    _write(os.path.join(root, "etc/nsswitch.conf"), "hosts: files dns\n")


def build_pause(out_dir: str, name: str = PAUSE_IMAGE) -> dict:
    """Compile images/base/pause.c statically and package it as the sandbox image."""
    cc = os.environ.get("CC", "gcc")
    with tempfile.TemporaryDirectory(prefix="kbpf-pause-") as tmp:
        root = os.path.join(tmp, "rootfs")
        os.makedirs(root)
        binary = os.path.join(root, "pause")
        subprocess.run([cc, "-static", "-Os", "-Wall", "-Werror", "-o", binary,
                        os.path.join(HERE, "pause.c")], check=True)
        subprocess.run(["strip", binary], check=False)
        os.chmod(binary, 0o755)
        return build_image(root, name, os.path.join(out_dir, "pause.tar"),
                           entrypoint=["/pause"], user="65535:65535",
                           labels={"org.opencontainers.image.title": "kubectl-bpf pause"})


def build_busybox(out_dir: str, name: str = BUSYBOX_IMAGE) -> dict:
    """A small workload image: busybox-static with every applet linked into /bin."""
    busybox = _find_busybox()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    with tempfile.TemporaryDirectory(prefix="kbpf-busybox-") as tmp:
        root = os.path.join(tmp, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        _base_files(root)
        shutil.copy2(busybox, os.path.join(root, "bin/busybox"))
        os.chmod(os.path.join(root, "bin/busybox"), 0o755)
        for a in applets:
            if a in ("busybox",) or "/" in a:
                continue
            os.symlink("busybox", os.path.join(root, "bin", a))
        for d in ("sbin", "usr/bin", "usr/sbin"):
            os.makedirs(os.path.dirname(os.path.join(root, d)), exist_ok=True)
            if not os.path.lexists(os.path.join(root, d)):
                os.symlink("/bin", os.path.join(root, d))
        os.makedirs(os.path.join(root, "www"), exist_ok=True)
        _write(os.path.join(root, "www/index.html"), "kubectl-bpf busybox ok\n")
        return build_image(root, name, os.path.join(out_dir, "busybox.tar"),
                           cmd=["sh"], env={"PATH": "/bin"},
                           labels={"org.opencontainers.image.title": "kubectl-bpf busybox"})


# --------------------------------------------------------------------------- CLI

def _parse_env(items: Sequence[str]) -> list[str]:
    for e in items:
        if "=" not in e:
            raise SystemExit(f"--env {e!r}: want K=V")
    return list(items)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for w in ("pause", "busybox", "all"):
        p = sub.add_parser(w)
        p.add_argument("--out", required=True, help="output directory for <name>.tar")
    p = sub.add_parser("inspect", help="print path, name and config digest of archives")
    p.add_argument("archives", nargs="+")
    p = sub.add_parser("image", help="generic: rootfs dir(s) -> OCI archive")
    p.add_argument("--rootfs", action="append", required=True, help="layer dir (repeatable)")
    p.add_argument("--name", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--entrypoint", help="JSON list")
    p.add_argument("--cmd", help="JSON list")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir")
    p.add_argument("--user")
    args = ap.parse_args(argv)

    results = []
    if args.what in ("pause", "all"):
        results.append(build_pause(args.out))
    if args.what in ("busybox", "all"):
        results.append(build_busybox(args.out))
    if args.what == "inspect":
        results.extend(inspect_archive(a) for a in args.archives)
    if args.what == "image":
        results.append(build_image(
            args.rootfs, args.name, args.output,
            entrypoint=json.loads(args.entrypoint) if args.entrypoint else None,
            cmd=json.loads(args.cmd) if args.cmd else None,
            env=_parse_env(args.env), workdir=args.workdir, user=args.user))
    for r in results:
        print(f"{r['output']}\t{r['name']}\t{r['config']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
