"""The ``kubectl-bpf`` command (``kubectl bpf`` as a kubectl plugin).

Click only: commands parse options, call the logic, render, and map
failures to the documented exit codes (protocol/exitcodes.py). Every error
is one line on stderr, never a traceback: click's multi-line usage errors
are folded into one line here as well.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Optional

import click

import kubectl_bpf
from kubectl_bpf.cli import errors
from kubectl_bpf.protocol import exitcodes

# Every command, explicitly; each module is imported only when its command
# runs, so `drops --local` does not pay for the Kubernetes client (~0.25 s).
COMMANDS = {
    "drops": "kubectl_bpf.gadgets.drops.command:drops",
    "policy-test": "kubectl_bpf.gadgets.policy_test.command:policy_test",
    "tcp": "kubectl_bpf.gadgets.tcp.command:tcp",
    "dns": "kubectl_bpf.gadgets.dns.command:dns",
    "list": "kubectl_bpf.cli.admin:list_command",
    "gc": "kubectl_bpf.cli.admin:gc_command",
    "setup": "kubectl_bpf.cli.admin:setup_command",
}


SHORT_HELP_LIMIT = 300  # characters of a command's first sentence in the group help: never cut

GUARDED = "_kubectl_bpf_guarded"  # marks a callback already wrapped (commands are module singletons)


class LazyGroup(click.Group):
    """Imports a command's module when it runs, and puts its callback under
    errors.guarded (one place for every command, gadgets added later included)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        if command.callback is not None and not getattr(command.callback, GUARDED, False):
            command.callback = errors.guarded(command.callback)
            setattr(command.callback, GUARDED, True)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's whole first sentence, wrapped: click cuts it at one
        line with "...", which left policy-test's description meaningless."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=SHORT_HELP_LIMIT)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(kubectl_bpf.__version__, prog_name="kubectl-bpf")
def cli() -> None:
    """eBPF for Kubernetes incident response: which packets did the kernel drop, and why."""


def accept_interrupts() -> None:
    """Make Ctrl-C (SIGINT) work from the first instant. A shell without job
    control starts background commands with SIGINT ignored, and Python keeps
    an inherited SIG_IGN: the start-up (imports, target resolution) then
    ignored SIGINT and the session ran on to --max-duration. kubectl stops on
    SIGINT in the same situation, and so do we. SIGHUP ignored by nohup is
    left ignored: that is what nohup asked for."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: runs the group, folds click errors into one line."""
    accept_interrupts()
    errors.quiet_libraries()
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
