"""Driving a cluster session from a terminal: signals, stop deadlines, and
the exit code.

kubectl's users expect Ctrl-C to mean "enough": the first one (or SIGTERM,
SIGHUP) stops the agents gracefully so the final summary still arrives; a
second one, or a summary that does not come within the grace period, forces:
the tracer pods are killed and the exit code is 130. The session is closed
(every Job deleted) on every one of these paths.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any, Callable, Optional

import click

from kubectl_bpf.kube import errors, session
from kubectl_bpf.protocol import exitcodes

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ForcedStopError(Exception):
    """A second stop request: give up on the summary."""


class StopRequests:
    """Counts stop signals; the first asks for a graceful stop, the second
    forces. Before streaming starts there is no summary to wait for, so any
    signal forces."""

    def __init__(self) -> None:
        self.count = 0
        self.graceful = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.count += 1
        if self.count > 1 or not self.graceful:
            raise ForcedStopError(signal.Signals(signum).name)

    def __enter__(self) -> "StopRequests":
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # nohup's SIGHUP: ignoring it was asked for (SIGINT is restored in cli.root)
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def run_session(live: session.Session, *, on_record: Callable[[str, dict[str, Any]], None],
                on_idle: Optional[Callable[[], None]] = None, max_wait_s: Optional[float] = None,
                on_finished: Optional[Callable[[session.NodeFinished], None]] = None) -> int:
    """Start, stream every record to ``on_record(node, record)`` (``on_idle`` when
    the stream pauses, ``on_finished`` when a node's stream is over) until each
    node finished, stop on signals; returns the exit code. ``max_wait_s`` bounds
    the whole stream (a backstop in case an agent never ends)."""
    exit_code = exitcodes.OK
    with StopRequests() as stops:
        try:
            with live:
                live.start()
                stops.graceful = True
                stop_deadline: Optional[float] = None
                hard_deadline = time.monotonic() + max_wait_s if max_wait_s else None
                for item in live.items():
                    now = time.monotonic()
                    if stops.count and stop_deadline is None:
                        click.echo("kubectl-bpf: stopping (again to force); waiting for the summary",
                                   err=True)
                        live.stop()
                        stop_deadline = now + session.STOP_GRACE_S
                    if stop_deadline is not None and now > stop_deadline:
                        raise ForcedStopError("no summary within the grace period")
                    if hard_deadline is not None and now > hard_deadline:
                        raise errors.KubeError("the tracer did not finish in time; its jobs were deleted")
                    if isinstance(item, session.NodeFinished):
                        if item.error:
                            click.echo(f"kubectl-bpf: error: {item.node}: {item.error}", err=True)
                        if on_finished is not None:
                            on_finished(item)
                        exit_code = max(exit_code, item.exit_code)
                    elif item is None:
                        (on_idle or sys.stdout.flush)()
                    else:
                        on_record(item.node, item.record)
        except ForcedStopError as exc:
            click.echo(f"kubectl-bpf: forced stop ({exc}); tracer jobs deleted", err=True)
            sys.stdout.flush()
            return exitcodes.INTERRUPTED
    return exit_code
