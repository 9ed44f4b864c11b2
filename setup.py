"""Build and install kubectl-bpf: the Python package plus its compiled BPF objects.

The BPF objects are compiled here, as part of `build_py`, so `pip install .`
leaves a CLI whose gadgets can load without a compiler on the target host.
"""

import os
import platform
import shutil
import subprocess
from typing import ClassVar

from setuptools import Command, find_packages, setup
from setuptools.command.build_py import build_py

# Explicit list, no discovery: a gadget is added here and in kubectl_bpf/gadgets.
GADGETS = ("drops", "tcp", "dns")
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kubectl_bpf")
# clang's -D__TARGET_ARCH_x and the vmlinux.h folder, by machine name.
ARCHES = {"x86_64": "x86", "aarch64": "arm64"}


def read_version() -> str:
    with open(os.path.join(PACKAGE_DIR, "__init__.py"), encoding="utf-8") as init:
        for line in init:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip('"')
    raise RuntimeError("no __version__ in kubectl_bpf/__init__.py")


class BuildBpf(Command):
    """Compile every gadget's <name>.bpf.c into a CO-RE <name>.bpf.o beside it."""

    description = "compile the BPF programs with clang"
    user_options: ClassVar[list[tuple[str, object, str]]] = [
        ("clang=", None, "clang binary"), ("force", "f", "rebuild everything")]

    def initialize_options(self) -> None:
        self.clang = os.environ.get("CLANG", "clang")
        self.force = False

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        arch = ARCHES.get(platform.machine())
        if arch is None:
            raise RuntimeError(f"no vmlinux.h for machine {platform.machine()}")
        bpf_dir = os.path.join(PACKAGE_DIR, "bpf")
        for gadget in GADGETS:
            gadget_dir = os.path.join(PACKAGE_DIR, "gadgets", gadget)
            source = os.path.join(gadget_dir, f"{gadget}.bpf.c")
            target = os.path.join(gadget_dir, f"{gadget}.bpf.o")
            inputs = [source, os.path.join(gadget_dir, f"{gadget}.h"),
                      os.path.join(bpf_dir, "common.bpf.h")]
            if not self.force and os.path.exists(target) and all(
                    os.path.getmtime(target) >= os.path.getmtime(i) for i in inputs):
                continue
            command = [self.clang, "-g", "-O2", "-Wall", "-Werror", "-target", "bpf",
                       f"-D__TARGET_ARCH_{arch}", "-I", bpf_dir,
                       "-I", os.path.join(bpf_dir, "vmlinux", arch),
                       "-c", source, "-o", target]
            self.announce(" ".join(command), level=2)
            subprocess.run(command, check=True)
            # DWARF goes, BTF (which CO-RE needs) stays.
            strip = shutil.which("llvm-strip") or "llvm-strip"
            subprocess.run([strip, "-g", target], check=True)


class BuildPyWithBpf(build_py):
    """build_py that compiles the BPF objects first, so package_data finds them."""

    def run(self) -> None:
        self.run_command("build_bpf")
        super().run()


setup(
    name="kubectl-bpf",
    version=read_version(),
    description="eBPF for Kubernetes incident response: packet drops and NetworkPolicy tests",
    packages=find_packages(include=["kubectl_bpf", "kubectl_bpf.*"]),
    package_data={"kubectl_bpf.gadgets.drops": ["*.bpf.o", "known_reasons.txt"],
                  "kubectl_bpf.gadgets.tcp": ["*.bpf.o"],
                  "kubectl_bpf.gadgets.dns": ["*.bpf.o"]},
    python_requires=">=3.9",
    install_requires=["kubernetes>=28", "click>=8.1", "PyYAML>=6", "tabulate>=0.9"],
    entry_points={"console_scripts": ["kubectl-bpf = kubectl_bpf.cli.root:main",
                                     "kubectl_complete-bpf = kubectl_bpf.cli.completion:main"]},
    cmdclass={"build_bpf": BuildBpf, "build_py": BuildPyWithBpf},
)
