"""The kernels ``make test-kernels`` boots: the one place to add a row."""

from __future__ import annotations

import dataclasses

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The kernel package's metapackage; apt resolves it to linux-image-<release>-cloud-amd64.
META_PACKAGE = "linux-image-cloud-amd64"


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One boot of the matrix: a Debian suite's cloud kernel plus extra command-line words."""

    name: str  # the row label: "6.12+lockdown"
    suite: str
    cmdline: str = ""


MATRIX: tuple[Kernel, ...] = (
    Kernel("5.10", "bullseye"),
    Kernel("6.1", "bookworm"),
    Kernel("6.12", "trixie"),
    Kernel("6.12+lockdown", "trixie", "lockdown=confidentiality"),
)


def select(names: str) -> tuple[Kernel, ...]:
    """The matrix rows named in a comma-separated list ("all" or "" for every row)."""
    if names in ("", "all"):
        return MATRIX
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    by_name = {k.name: k for k in MATRIX}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown kernel(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return tuple(by_name[n] for n in wanted)
