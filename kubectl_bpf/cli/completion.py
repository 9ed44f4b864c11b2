"""``kubectl bpf <TAB>``: kubectl (1.26+) completes a plugin's arguments by
running ``kubectl_complete-bpf __complete ARGS... INCOMPLETE`` and reading
Cobra's protocol: one candidate per line, then ``:DIRECTIVE``. The
candidates come from click's own completion, so they follow the commands.
"""

from __future__ import annotations

import sys
from typing import Optional

from click import shell_completion

from kubectl_bpf.cli import errors, root

NO_FILE_COMPLETION = 4  # Cobra's ShellCompDirectiveNoFileComp: nothing else to offer
ERROR_DIRECTIVE = 1  # Cobra's ShellCompDirectiveError: completion failed, offer nothing


def candidates(args: list[str]) -> list[str]:
    """Completions for the last argument (possibly empty) after the others."""
    *done, incomplete = args or [""]
    completer = shell_completion.ShellComplete(root.cli, {}, "kubectl-bpf", "_KUBECTL_BPF_COMPLETE")
    return [item.value for item in completer.get_completions(done, incomplete)]


def main(argv: Optional[list[str]] = None) -> None:
    errors.quiet_libraries()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["__complete"], ["__completeNoDesc"]):
        args = args[1:]
    try:
        values = errors.guarded(candidates)(args)
    except errors.CommandError as exc:  # the cluster cannot be reached: one line, as every command
        print(f":{ERROR_DIRECTIVE}")
        print(f"kubectl-bpf: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    for value in values:
        print(value)
    print(f":{NO_FILE_COMPLETION}")
