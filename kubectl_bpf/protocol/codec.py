"""Encoding and decoding of single JSON lines, and a splitter for byte chunks.

No I/O: the agent's writer and the client's log reader both build on this.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional

from kubectl_bpf import protocol

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class ProtocolError(ValueError):
    """A line that is not a record of this protocol version."""


def encode(record_type: str, seq: int, payload: dict[str, Any]) -> str:
    """One line, without the newline. The envelope comes first, so a reader
    sees the type before the payload; built by string concatenation because
    it runs once per event on the hot path."""
    head = f'{{"v":{protocol.PROTOCOL_VERSION},"seq":{seq},"type":"{record_type}"'
    if not payload:
        return head + "}"
    return head + "," + _ENCODER.encode(payload)[1:]


def decode(line: str) -> dict[str, Any]:
    """Parse one line; refuse anything but a record of our protocol version."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not a JSON record: {line[:120]!r}") from exc
    if not isinstance(record, dict) or "type" not in record or "seq" not in record:
        raise ProtocolError(f"not a kubectl-bpf record: {line[:120]!r}")
    version = record.get("v")
    if version != protocol.PROTOCOL_VERSION:
        raise ProtocolError(f"agent speaks protocol v{version}, this client speaks "
                            f"v{protocol.PROTOCOL_VERSION}: use matching versions of the "
                            "plugin and its agent image")
    return record


class LineBuffer:
    """Splits a byte stream into complete lines. Chunks may end mid-line or
    mid-character (pod logs arrive in arbitrary pieces), so bytes are kept
    until their newline arrives."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> Iterator[str]:
        data = self._pending + chunk
        *complete, self._pending = data.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                yield line

    def rest(self) -> Optional[str]:
        """A final line with no newline (a stream cut mid-record), if any."""
        rest, self._pending = self._pending.decode("utf-8", "replace").strip(), b""
        return rest or None
