"""``python -m kubectl_bpf``: the CLI without its console script."""

from kubectl_bpf.cli import main

main()
