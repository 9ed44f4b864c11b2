"""Why the agent stopped early, each with the exit code the client maps back.

Raised anywhere in the agent and turned into an ``error`` record plus an
``end`` record by the runner, so the client sees one clear line, never a
traceback.
"""

from __future__ import annotations

from kubectl_bpf.protocol import exitcodes


class AgentError(Exception):
    exit_code = exitcodes.FAILURE


class BadInputError(AgentError):
    exit_code = exitcodes.USAGE


class TargetNotFoundError(AgentError):
    exit_code = exitcodes.NOT_FOUND


class PrivilegeError(AgentError):
    exit_code = exitcodes.PERMISSION


class UnsupportedError(AgentError):
    """The kernel or host lacks something the gadget needs (BTF, a tracepoint, libbpf)."""

    exit_code = exitcodes.UNSUPPORTED
