"""The agent's proof that its client is still there, without API credentials.

The client keeps bumping a counter in an annotation of the tracer pod; the
kubelet projects the pod's annotations into a downwardAPI file. When the
counter has not changed for ``ttl_s`` (by the agent's own clock, so clock
skew between client and node does not matter), the client is gone and the
agent stops by itself. A file that never shows the key never expires:
``--local`` runs and old clients have no lease.
"""

from __future__ import annotations

import time
from typing import Optional

CHECK_PERIOD_S = 1.0  # reading a small file once a second costs nothing


def read_annotation(path: str, key: str) -> Optional[str]:
    """The value of one annotation in a downwardAPI file (``key="value"`` lines)."""
    try:
        with open(path, encoding="utf-8") as annotations:
            for line in annotations:
                name, _, value = line.rstrip("\n").partition("=")
                if name == key:
                    return value.strip('"')
    except OSError:
        return None
    return None


class Lease:
    def __init__(self, path: str, key: str, ttl_s: float) -> None:
        self._path = path
        self._key = key
        self._ttl_s = ttl_s
        self._value: Optional[str] = None
        self._changed_at = time.monotonic()
        self._checked_at = 0.0

    def expired(self, now: float) -> bool:
        if now - self._checked_at < CHECK_PERIOD_S:
            return False
        self._checked_at = now
        value = read_annotation(self._path, self._key)
        if value is None:
            return False
        if value != self._value:
            self._value, self._changed_at = value, now
            return False
        return now - self._changed_at > self._ttl_s
