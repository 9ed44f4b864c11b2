"""``python -m kubectl_bpf``: the CLI without its console script."""

from kubectl_bpf.cli.root import main

main()
