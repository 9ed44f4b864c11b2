"""A verifier rejection as one line: kernel release, program, and the
verifier's last meaningful message, with the whole log in a file.

The verifier log of one rejected program runs to thousands of lines (every
instruction on the failing path, with register states), and its cause is
at the end. Shown whole it is a wall of text nobody reads; cut short (libbpf
prints it through a bounded message) it loses exactly the cause. So the
agent keeps it whole in a file and names the file in the line.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from typing import Optional

# Directory for full logs; the agent's pod has a writable /tmp.
LOG_DIR_ENV = "KUBECTL_BPF_VERIFIER_LOG_DIR"

# Lines the verifier writes after the cause (statistics) or that carry no cause.
_TRAILER = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|peak_states|"
    r"mark_read|-- END PROG LOAD LOG --|-- BEGIN PROG LOAD LOG --|"
    r"Validating .* func#\d+|Func#\d+ .* is (global|static))")
# An instruction dump ("12: (85) call ..."), a register state ("R1=ctx() ..."),
# or a source line annotation ("; return x; @ file.c:12"): the path, not the cause.
_PATH = re.compile(r"^(\d+: \(|\d+: R\d|R\d+[_=]|; |from \d+ to \d+:|last_idx|regs=|parent didn't)")


def last_message(log: str) -> str:
    """The cause: the last line that is neither statistics nor the path."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if text and not _TRAILER.match(text) and not _PATH.match(text):
            return text
    return "no verifier message"


def save_log(program: str, log: str, directory: Optional[str] = None) -> Optional[str]:
    """Write the whole log to a new file; its path, or None if nothing could be written."""
    directory = directory or os.environ.get(LOG_DIR_ENV) or tempfile.gettempdir()
    try:
        descriptor, path = tempfile.mkstemp(
            prefix=f"kubectl-bpf-verifier-{program}-{time.strftime('%Y%m%dT%H%M%S')}-",
            suffix=".log", dir=directory)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(log)
    except OSError:
        return None
    return path


def rejection(release: str, program: str, log: str, *, directory: Optional[str] = None) -> str:
    """One line for a rejected program; the whole log goes to a file."""
    path = save_log(program, log, directory) if log else None
    where = f" (full verifier log: {path})" if path else ""
    return f"kernel {release} rejected BPF program {program}: {last_message(log)}{where}"
