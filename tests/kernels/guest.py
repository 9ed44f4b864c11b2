"""PID 1 in the guest: mount what the agent needs, run the tier, send results out, power off.

Results go to the second serial port (/dev/ttyS1, a file on the host) between markers, apart
from the console's kernel noise: the agent's preflight record on this kernel, pytest's JUnit
XML and pytest's exit code. pytest's own terminal output goes to the console.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import traceback

MOUNTS = (  # (type, target): what the agent and the tier read or write
    ("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev"), ("devpts", "/dev/pts"),
    ("tmpfs", "/run"), ("tmpfs", "/tmp"), ("bpf", "/sys/fs/bpf"), ("securityfs", "/sys/kernel/security"),
    ("debugfs", "/sys/kernel/debug"), ("tracefs", "/sys/kernel/tracing"), ("cgroup2", "/sys/fs/cgroup"),
)
# Modules the tier needs up front; nf_tables' expression modules are autoloaded by the kernel.
MODULES = ("veth", "nf_tables", "nft_reject_inet", "nft_ct")
RESULTS_TTY = "/dev/ttyS1"
MARK = "=====KBPF"
RB_POWER_OFF = 0x4321FEDC
ARGS_FILE = "/src/.pytest-args.json"


def pytest_args(path: str = ARGS_FILE) -> list[str]:
    """What the host asked pytest to run (a file in the source archive: the kernel command line
    is capped at 2 KiB, too small for a list of test ids)."""
    with open(path, encoding="utf-8") as f:
        args = json.load(f)
    return [str(a) for a in args]


def mount_all() -> None:
    """Mount everything first (never raising): /dev/ttyS1 needs devtmpfs before anything is reported."""
    for fstype, target in MOUNTS:
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, fstype, target], check=False)


def setup() -> None:
    os.makedirs("/var/run/netns", exist_ok=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for module in MODULES:
        subprocess.run(["modprobe", module], check=False)


def section(out: object, name: str, body: str) -> None:
    print(f"{MARK} {name}", file=out)  # type: ignore[call-overload]
    print(body, file=out)  # type: ignore[call-overload]


def main() -> None:
    env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               HOME="/root", PYTHONDONTWRITEBYTECODE="1", LANG="C.UTF-8",
               # Under TCG an agent takes several times longer to load and attach than on
               # the host: the tests' 10 s wait for `ready` would fail for emulation alone.
               KUBECTL_BPF_TEST_READY_TIMEOUT_S=os.environ.get("KUBECTL_BPF_TEST_READY_TIMEOUT_S", "90"))
    os.environ.update(env)
    mount_all()
    with open(RESULTS_TTY, "w", encoding="utf-8") as out:
        try:
            setup()
            args = pytest_args()
            preflight = subprocess.run([sys.executable, "-m", "kubectl_bpf", "drops", "--local", "-o", "json",
                                        "--duration", "1"], capture_output=True, text=True, check=False)
            section(out, "PREFLIGHT", preflight.stdout + preflight.stderr)
            with open("/sys/kernel/security/lockdown", encoding="ascii") as f:
                section(out, "LOCKDOWN", f.read().strip())
            junit = "/tmp/junit.xml"
            rc = subprocess.run([sys.executable, "-m", "pytest", "--with-agent", "-p", "no:cacheprovider",
                                 "-p", "tests.kernels.plugin", f"--junitxml={junit}", "-o",
                                 "junit_family=xunit1", "-rA", "--color=no", *args], check=False).returncode
            with open(junit, encoding="utf-8") as f:
                section(out, "JUNIT", f.read())
            section(out, "RC", str(rc))
        except Exception:  # PID 1 must never die: report and power off
            section(out, "ERROR", traceback.format_exc())
        section(out, "END", "")
        out.flush()
    os.sync()
    ctypes.CDLL(None, use_errno=True).reboot(RB_POWER_OFF)


if __name__ == "__main__":
    main()
