"""Boot one matrix entry under qemu (TCG: a KVM guest hangs at boot on this machine kind)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time

from tests.kernels import cache, matrix

# x86's COMMAND_LINE_SIZE: a longer -append leaves the guest hung before its first message.
MAX_CMDLINE = 2047


def kernel_cmdline(kernel: matrix.Kernel) -> str:
    """The guest's command line: serial console, our /init, the matrix words."""
    words = ["console=ttyS0", "rdinit=/init", "panic=-1", "quiet", kernel.cmdline]
    line = " ".join(w for w in words if w)
    if len(line) > MAX_CMDLINE:
        raise ValueError(f"{kernel.name}: kernel command line longer than {MAX_CMDLINE} bytes")
    return line


def qemu_argv(vmlinuz: str, initrd: str, cmdline: str, console: str, results: str) -> list[str]:
    # setpriv --pdeathsig: qemu is killed when the harness dies (Ctrl-C, a CI timeout).
    return ["setpriv", "--pdeathsig", "KILL", *cache.nice([
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "3072",
        "-kernel", vmlinuz, "-initrd", initrd, "-append", cmdline,
        "-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
        "-serial", f"file:{console}", "-serial", f"file:{results}"])]


def boot(kernel: matrix.Kernel, run_dir: str, vmlinuz: str, archives: list[str], *,
         timeout_s: float) -> tuple[str, str, float]:
    """Boot, wait for power-off (or kill at timeout); return (console log, results file, seconds)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    initrd = os.path.join(run_dir, "initrd.gz")
    # The kernel unpacks concatenated cpio archives in order: rootfs, modules, sources.
    with open(initrd, "wb") as out:
        for archive in archives:
            with open(archive, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    console, results = os.path.join(run_dir, "console.log"), os.path.join(run_dir, "results.txt")
    argv = qemu_argv(vmlinuz, initrd, kernel_cmdline(kernel), console, results)
    cache.log(f"{kernel.name}: booting ({shlex.join(argv[6:])[:160]}...)")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        cache.log(f"{kernel.name}: no power-off within {timeout_s:.0f} s: killing qemu")
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.unlink(initrd)
    return console, results, time.monotonic() - started
