"""Start a daemon so that its recorded PID is the daemon from the first instant.

`setsid BINARY ... &` in bash records `$!` while that PID still runs bash (then setsid) and
has not yet exec'd BINARY; a readiness loop that checks "is PID still BINARY?" right after
the start then sees bash and reports the daemon as dead (issue 10: "kube-router exited"
while it was starting). `subprocess.Popen` returns only once the child's exec has succeeded
(it waits on a close-on-exec pipe), so the PID written here already runs BINARY, and an
exec failure is an error of `spawn` itself, not a later "exited".

    python3 -m hack.localcluster.proc spawn [--netns=/run/netns/N] RUN_DIR NAME LOG -- BINARY ARGS...

writes RUN_DIR/NAME.pid, NAME.exe (the binary's real path) and NAME.start (its start time)
and prints the PID. `alive RUN_DIR NAME` prints the PID and exits 0 if that same process
still runs.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if PID is gone.

    With the PID it names one process for the machine's lifetime: a recycled PID (after a
    reboot, or a crash and many forks) has another start time. exec keeps it unchanged.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def state(pid: int) -> str | None:
    """The one-letter process state (R, S, Z, ...) or None if PID is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def exe_of(pid: int) -> str | None:
    """The real path of the binary PID runs (without the " (deleted)" suffix)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return exe.removesuffix(" (deleted)")


CLONE_NEWNET = 0x40000000


def _enter_netns(path: str) -> Callable[[], None]:
    """A preexec hook that moves the child into the network namespace at path.

    In the child itself, before the exec: `ip netns exec NS BINARY` would exec twice and
    bring back the very race spawn exists to avoid.
    """
    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {path}: {os.strerror(err)}")
        finally:
            os.close(fd)
    return enter


def spawn(run_dir: Path, name: str, log: Path, argv: Sequence[str], netns: str | None = None) -> int:
    """Start argv in its own session, appending to log; record and return its PID.

    Its own session: nothing of ours signals it by accident and it outlives the caller.
    close_fds (the default) keeps it from inheriting the caller's lock descriptors. netns: a
    network namespace file (/run/netns/NAME) the daemon runs in (a simulated node's).
    """
    binary = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if binary is None:
        raise FileNotFoundError(f"{name}: {argv[0]} not found on PATH")
    real = os.path.realpath(binary)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(
            [binary, *argv[1:]], stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            # single-threaded caller (a CLI run from bash): the hook's thread hazard cannot occur
            preexec_fn=_enter_netns(netns) if netns else None,  # noqa: PLW1509
        )
    # The child is the daemon's parentless future: it is reaped by init (or a subreaper)
    # once this process exits. Mark it so Popen's destructor does not warn about it.
    child.returncode = 0
    start = start_time(child.pid)
    (run_dir / f"{name}.exe").write_text(real + "\n")
    (run_dir / f"{name}.start").write_text(f"{start}\n" if start else "")
    (run_dir / f"{name}.pid").write_text(f"{child.pid}\n")
    return child.pid


def alive(run_dir: Path, name: str) -> int | None:
    """The recorded PID if it is still the process `spawn` started (same binary, same start
    time, not a zombie), else None."""
    try:
        pid = int((run_dir / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    want_exe = _read(run_dir / f"{name}.exe")
    want_start = _read(run_dir / f"{name}.start")
    if want_exe and exe_of(pid) != want_exe:
        return None
    if want_start and start_time(pid) != want_start:
        return None
    if state(pid) in (None, "Z"):
        return None
    return pid


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def main(args: list[str]) -> int:
    """Command line: spawn RUN NAME LOG -- ARGV... | alive RUN NAME."""
    netns = None
    if len(args) > 2 and args[0] == "spawn" and args[1].startswith("--netns="):
        netns = args.pop(1).removeprefix("--netns=")
    if len(args) >= 5 and args[0] == "spawn" and args[4] == "--" and len(args) > 5:
        try:
            pid = spawn(Path(args[1]), args[2], Path(args[3]), args[5:], netns)
        except OSError as e:
            print(f"cannot start {args[2]}: {e}", file=sys.stderr)
            return 1
        print(pid)
        return 0
    if len(args) == 3 and args[0] == "alive":
        found = alive(Path(args[1]), args[2])
        if found is None:
            return 1
        print(found)
        return 0
    print("usage: proc spawn [--netns=PATH] RUN NAME LOG -- BINARY ARGS... | proc alive RUN NAME",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
