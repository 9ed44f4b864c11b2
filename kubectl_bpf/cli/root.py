"""The ``kubectl-bpf`` command (``kubectl bpf`` as a kubectl plugin).

Click only: commands parse options, call the logic, render, and map
failures to the documented exit codes (protocol/exitcodes.py). Every error
is one line on stderr, never a traceback: click's multi-line usage errors
are folded into one line here as well.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

import kubectl_bpf
from kubectl_bpf.cli import admin
from kubectl_bpf.gadgets.drops import command as drops_command
from kubectl_bpf.gadgets.policy_test import command as policy_test_command
from kubectl_bpf.protocol import exitcodes


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(kubectl_bpf.__version__, prog_name="kubectl-bpf")
def cli() -> None:
    """eBPF for Kubernetes incident response: which packets did the kernel drop, and why."""


cli.add_command(drops_command.drops)
cli.add_command(policy_test_command.policy_test)
cli.add_command(admin.list_command)
cli.add_command(admin.gc_command)
cli.add_command(admin.setup_command)


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: runs the group, folds click errors into one line."""
    try:
        code = cli.main(args=argv, prog_name="kubectl-bpf", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("kubectl-bpf: interrupted", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message(), err=True)  # the help text: not an error line
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"kubectl-bpf: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else exitcodes.OK)
