"""Options shared by the commands that talk to a cluster: kubectl's global
flags, spelled and defaulted the way kubectl does, so a runbook line can be
copied from one tool to the other.
"""

from __future__ import annotations

import functools
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import click

import kubectl_bpf
from kubectl_bpf.kube import settings

if TYPE_CHECKING:
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


# The longest duration any flag takes: a week outlasts any incident, while
# 99999999999h became an activeDeadlineSeconds of 3.6e14 and timeouts that overflow.
MAX_DURATION_S = 7 * 24 * 3600.0


class DurationType(click.ParamType):  # type: ignore[type-arg]
    """A kubectl duration in seconds; zero only where it means "none"; at
    most ``maximum_s`` (None: unbounded, for ages such as gc --older-than)."""

    name = "duration"

    def __init__(self, *, allow_zero: bool = False, maximum_s: Optional[float] = MAX_DURATION_S) -> None:
        self._allow_zero = allow_zero
        self._maximum_s = maximum_s

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        try:
            seconds = float(value) if isinstance(value, (int, float)) else parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < 0 or (seconds == 0 and not self._allow_zero):
            self.fail(f"{value!r} is not a positive duration", param, ctx)
        if self._maximum_s is not None and seconds > self._maximum_s:
            self.fail(f"{value!r} is longer than the limit of {self._maximum_s / 3600:g}h", param, ctx)
        return seconds


DURATION_TYPE = DurationType()
TIMEOUT_TYPE = DurationType(allow_zero=True)
AGE_TYPE = DurationType(maximum_s=None)


def target_options(command: F) -> F:
    """What a gadget traces on a cluster, the same for every gadget: TARGET
    references (pods, workloads, nodes) and a label selector, as ``refs`` and
    ``selector``."""
    command = click.option("-l", "--selector", metavar="SELECTOR",
                           help="Target: the pods matching this label selector in the namespace.")(command)
    return click.argument("refs", nargs=-1, metavar="[TARGET]...", shell_complete=complete_targets)(command)


def kube_options(command: F) -> F:
    """kubectl's connection flags, passed to the command as keyword arguments
    (``kubeconfig``, ``kube_context``, ``namespace``, ``request_timeout``)."""
    command = connection_options(command)
    return click.option("-n", "--namespace", metavar="NS",
                        help="Namespace of the targets (default: the context's, else 'default').")(command)


def connection_options(command: F) -> F:
    """kube_options without -n, for commands that have no targets (list, gc,
    setup work in --job-namespace): a -n there would be accepted and ignored."""
    decorators = [
        click.option("--kubeconfig", metavar="PATH",
                     help="Kubeconfig file (default: $KUBECONFIG, which may list several, "
                          "or ~/.kube/config)."),
        click.option("--context", "kube_context", metavar="NAME", help="Kubeconfig context to use."),
        click.option("--request-timeout", type=TIMEOUT_TYPE, metavar="DURATION",
                     help="Timeout of each API request, e.g. 10s (0: none)."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def complete_targets(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of target references against the cluster of the
    command line's own kube flags (nothing on an API refusal; an unreachable
    cluster is an error, see completion.main)."""
    from kubectl_bpf.kube import client, errors, targets  # noqa: PLC0415 -- only when completing

    params = ctx.params
    try:
        kube = client.connect(to_kube_options(
            kubeconfig=params.get("kubeconfig"), kube_context=params.get("kube_context"),
            namespace=params.get("namespace"), request_timeout=None))
    except errors.UnreachableError:
        raise  # said in one line by completion.main, as every command does
    except errors.KubeError:
        return []
    return targets.complete_reference(kube, incomplete)


def to_kube_options(*, kubeconfig: Optional[str], kube_context: Optional[str], namespace: Optional[str],
                    request_timeout: Optional[float]) -> client.KubeOptions:
    from kubectl_bpf.kube import client  # noqa: PLC0415 -- the Kubernetes client only when connecting

    return client.KubeOptions(kubeconfig=kubeconfig, context=kube_context, namespace=namespace,
                              request_timeout_s=request_timeout or None)


def _seconds(value: float) -> str:
    return f"{value:g}s"


DEFAULT_IMAGE = f"localhost/kubectl-bpf/agent:{kubectl_bpf.__version__}"


def tracer_options(*, job_kind: str) -> Callable[[F], F]:
    """How the tracer Jobs run (namespace, image, privilege, deadlines); the
    command receives them as one ``tracer: settings.SessionOptions``."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_settings(*args: Any, **kwargs: Any) -> Any:
            duration, max_duration = kwargs.get("duration"), kwargs["max_duration"]
            if duration is not None and duration > max_duration:
                # A ceiling that a longer --duration silently raised would be no ceiling.
                raise click.UsageError(f"--duration {_seconds(duration)} is longer than --max-duration "
                                       f"{_seconds(max_duration)}; raise --max-duration to trace longer")
            kwargs["tracer"] = settings.SessionOptions(
                image=kwargs.pop("image"), job_namespace=kwargs.pop("job_namespace"),
                privileged=kwargs.pop("privileged"), start_timeout_s=kwargs.pop("start_timeout"),
                ttl_s=int(kwargs.pop("job_ttl")), max_duration_s=kwargs.pop("max_duration"),
                lease_ttl_s=kwargs.pop("lease_ttl"), image_pull_secrets=kwargs.pop("image_pull_secrets"))
            return command(*args, **kwargs)

        decorators = [
            click.option("--job-namespace", default="kubectl-bpf", show_default=True, metavar="NS",
                         help=f"Namespace of the {job_kind} Jobs (see 'kubectl bpf setup')."),
            click.option("--image", default=lambda: os.environ.get("KUBECTL_BPF_IMAGE", DEFAULT_IMAGE),
                         show_default=f"$KUBECTL_BPF_IMAGE or {DEFAULT_IMAGE}", help="The agent image."),
            click.option("--image-pull-secret", "image_pull_secrets", multiple=True, metavar="NAME",
                         help="Pull secret in the job namespace for the agent image (repeatable)."),
            click.option("--privileged", is_flag=True,
                         help=f"Run the {job_kind} privileged, not with its capabilities (a fallback)."),
            click.option("--start-timeout", type=DURATION_TYPE, default="60s", show_default=True,
                         metavar="DURATION", help=f"Give up if the {job_kind} is not running by then."),
            click.option("--max-duration", type=DURATION_TYPE, default="1h", show_default=True,
                         metavar="DURATION", help="Hard limit the agent and its Job enforce."),
            click.option("--job-ttl", type=DURATION_TYPE, default="5m", show_default=True, metavar="DURATION",
                         help="How long a finished Job stays for inspection if not deleted."),
            click.option("--lease-ttl", type=DURATION_TYPE, default="60s", show_default=True,
                         metavar="DURATION",
                         help="The agent stops this long after losing contact with this client."),
        ]
        wrapped: Any = with_settings
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate
