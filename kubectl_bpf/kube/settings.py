"""How a session's tracer Jobs are run, as the user chose on the command line.

Apart from session.py so the CLI can build it without importing the
Kubernetes client (a quarter of a second that ``--local`` should not pay).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SessionOptions:
    image: str
    job_namespace: str
    privileged: bool
    start_timeout_s: float
    ttl_s: int  # ttlSecondsAfterFinished: minutes, so a failure can still be inspected
    max_duration_s: float  # the hard maximum when following without --duration
    lease_ttl_s: float
    image_pull_secrets: tuple[str, ...] = ()
