"""The CLI's one error type: a message for one line on stderr and an exit
code from ``protocol.exitcodes``.

click's own UsageError prints usage text around the message; errors about
the input or the cluster are better said in one line.
"""

from __future__ import annotations

import click


class CommandError(click.ClickException):
    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
