"""Options shared by the commands that talk to a cluster: kubectl's global
flags, spelled and defaulted the way kubectl does, so a runbook line can be
copied from one tool to the other.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, TypeVar

import click

from kubectl_bpf.kube import client

F = TypeVar("F", bound=Callable[..., Any])

# kubectl's --request-timeout: a bare number is seconds; "0" means no timeout.
DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """Seconds from kubectl's duration syntax (``30``, ``30s``, ``1m30s``, ``2h``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = DURATION.match(text)
    if not text or not match:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 1m, 1h)")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


class DurationType(click.ParamType):  # type: ignore[type-arg]
    """A kubectl duration in seconds; zero only where it means "none"."""

    name = "duration"

    def __init__(self, *, allow_zero: bool = False) -> None:
        self._allow_zero = allow_zero

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        try:
            seconds = float(value) if isinstance(value, (int, float)) else parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < 0 or (seconds == 0 and not self._allow_zero):
            self.fail(f"{value!r} is not a positive duration", param, ctx)
        return seconds


DURATION_TYPE = DurationType()
TIMEOUT_TYPE = DurationType(allow_zero=True)


def kube_options(command: F) -> F:
    """kubectl's connection flags, passed to the command as keyword arguments
    (``kubeconfig``, ``kube_context``, ``namespace``, ``request_timeout``)."""
    decorators = [
        click.option("--kubeconfig", metavar="PATH",
                     help="Kubeconfig file (default: $KUBECONFIG, which may list several, "
                          "or ~/.kube/config)."),
        click.option("--context", "kube_context", metavar="NAME", help="Kubeconfig context to use."),
        click.option("-n", "--namespace", metavar="NS",
                     help="Namespace of the targets (default: the context's, else 'default')."),
        click.option("--request-timeout", type=TIMEOUT_TYPE, metavar="DURATION",
                     help="Timeout of each API request, e.g. 10s (0: none)."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def to_kube_options(*, kubeconfig: Optional[str], kube_context: Optional[str], namespace: Optional[str],
                    request_timeout: Optional[float]) -> client.KubeOptions:
    return client.KubeOptions(kubeconfig=kubeconfig, context=kube_context, namespace=namespace,
                              request_timeout_s=request_timeout or None)
