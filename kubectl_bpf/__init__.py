"""kubectl-bpf: eBPF for Kubernetes incident response.

The version is the one contract between the CLI and its agent image: the
image tag is derived from it, so a client never drives an agent it was not
built with.
"""

__version__ = "0.1.0"
