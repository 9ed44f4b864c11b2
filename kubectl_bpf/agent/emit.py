"""Where records go: sequence numbers and the sinks that write them.

The agent numbers every record (``seq``) so a client resuming a broken log
stream can drop duplicates. Two sinks: JSON lines to a file descriptor (the
tracer pod's stdout, or ``--local -o json``) and, for ``--local`` with a
table, a direct hand-off to the renderer without encoding at all.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from kubectl_bpf.protocol import codec


class Sink(Protocol):
    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...


class StreamClosedError(Exception):
    """The reader went away (EPIPE): stop tracing, there is no one to tell."""


class JsonLinesSink:
    """Buffers encoded lines and writes them with one syscall per flush: the
    agent flushes once per ring buffer poll, so a flood costs few writes."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._lines: list[str] = []

    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None:
        self._lines.append(codec.encode(record_type, seq, payload))

    def flush(self) -> None:
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode()
        self._lines.clear()
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BrokenPipeError as exc:
            raise StreamClosedError() from exc


class Emitter:
    """Numbers records in emission order, starting at 1."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.seq = 0

    def emit(self, record_type: str, payload: dict[str, Any]) -> None:
        self.seq += 1
        self._sink.write(record_type, self.seq, payload)

    def flush(self) -> None:
        self._sink.flush()
