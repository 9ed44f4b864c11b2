"""The CLI's one error type (a message for one line on stderr and an exit
code from ``protocol.exitcodes``), and the guard every command runs under.

click's own UsageError prints usage text around the message; errors about
the input or the cluster are better said in one line.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def quiet_libraries() -> None:
    """No library speaks on the user's terminal: warnings (urllib3's
    InsecureRequestWarning, deprecations) are dropped, and log records of
    libraries without a handler (urllib3's "Retrying ...") no longer fall
    through to logging's last-resort stderr handler."""
    warnings.simplefilter("ignore")
    root = logging.getLogger()
    if not any(isinstance(handler, logging.NullHandler) for handler in root.handlers):
        root.addHandler(logging.NullHandler())


def guarded(callback: F) -> F:
    """``callback`` with every failure to reach or trust the API server
    turned into one line and exit code UNREACHABLE, and any other KubeError
    into its own line and code, wherever in the command it was raised (the
    original cause is found through ``raise ... from`` chains). Registered
    for every command in root.py, so a new gadget needs nothing of its own."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError):
            raise
        except Exception as exc:
            from kubectl_bpf.kube import errors as kube_errors  # noqa: PLC0415 -- failure path only
            from kubectl_bpf.kube import transport  # noqa: PLC0415

            unreachable = transport.unreachable(exc)
            if unreachable is not None:
                raise CommandError(str(unreachable), exit_code=unreachable.exit_code) from exc
            if isinstance(exc, kube_errors.KubeError):
                raise CommandError(str(exc), exit_code=exc.exit_code) from exc
            raise

    return run  # type: ignore[return-value]
