"""Client-side state of one agent's record stream, fed with raw log bytes.

The log of a tracer pod is not a clean channel: chunks end anywhere, the
stream can break and be resumed (re-delivering lines already seen), lines
carry the kubelet's timestamp prefix when asked for, and a crashing agent
mixes a Python traceback (stderr) into it. This module turns that into an
ordered list of records without duplicates, and says at the end whether the
stream was complete (an ``end`` record) or cut short, and how many records
went missing in between (``seq`` gaps).

No I/O: kube/logs.py does the reading and feeds the bytes here, so every
chunking and resume case is testable without a cluster.
"""

from __future__ import annotations

import calendar
import collections
import dataclasses
import json
import re
from typing import Any, Optional

from kubectl_bpf import protocol
from kubectl_bpf.protocol import codec, records

# How many non-record lines to keep: enough for the tail of a Python
# traceback, which is what the user needs when the agent dies.
NOISE_LINES = 20

# The agent numbers records from 1 (agent/emit.py), so a first record with a
# higher seq means the start of the stream was lost (e.g. log rotation).
FIRST_SEQ = 1

# kubelet's prefix with timestamps=true: RFC3339 with up to nanoseconds, in
# UTC ("Z") or, when the runtime writes local time, with an offset.
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)(?: |$)")


class TruncatedError(codec.ProtocolError):
    """The stream stopped without an ``end`` record: the agent died or the log broke."""


def timestamp_key(timestamp: str) -> tuple[int, int]:
    """(epoch seconds, nanoseconds) of a kubelet timestamp, so that timestamps
    with different precision (RFC3339Nano drops trailing zeros) or offsets
    compare correctly; plain string comparison would not."""
    match = _TIMESTAMP.fullmatch(timestamp)
    if match is None:
        raise ValueError(f"not an RFC3339 timestamp: {timestamp!r}")
    base, fraction, zone = match.groups()
    year, month, day = int(base[0:4]), int(base[5:7]), int(base[8:10])
    hour, minute, second = int(base[11:13]), int(base[14:16]), int(base[17:19])
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        epoch -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return epoch, int((fraction or "0").ljust(9, "0"))


def split_timestamp(line: str) -> tuple[Optional[str], str]:
    """Separate kubelet's timestamp prefix, if the line has one (an empty
    log line is the timestamp alone, its space stripped with the line). A
    record starts with "{", so a leading digit is the only case worth a regex."""
    if not line[:1].isdigit():
        return None, line
    space = line.find(" ")
    candidate = line if space < 0 else line[:space]
    # Fast path for kubelet's usual UTC form; the regex is a third of the per-line cost.
    if 20 <= len(candidate) <= 30 and candidate[-1] == "Z" and candidate[10] == "T" and candidate[4] == "-":
        return candidate, line[space + 1:] if space >= 0 else ""
    match = _TIMESTAMP.match(line)
    if match is not None:
        return line[:match.end(3)], line[match.end():]
    return None, line


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """How a stream ended. ``complete`` means an ``end`` record arrived; the
    counters say whether the records before it were all there."""

    complete: bool
    end: Optional[dict[str, Any]]  # the end record (status, exit_code), if it came
    records: tuple[dict[str, Any], ...]  # decoded from a last line that had no newline
    last_seq: Optional[int]
    ready_seen: bool
    gaps: int
    missing: int
    duplicates: int
    noise: tuple[str, ...]

    @property
    def truncated(self) -> bool:
        return not self.complete

    def describe(self) -> str:
        """One line for the user; names the last output when the agent died."""
        if self.complete:
            text = "stream complete"
        elif self.last_seq is None:
            text = "the agent produced no records"
        else:
            text = f"stream stopped without an end record after seq {self.last_seq}"
        if self.gaps:
            text += f" ({self.missing} records missing in {self.gaps} gaps)"
        if self.noise and not self.complete:
            text += "; last output: " + " | ".join(self.noise[-5:])
        return text

    def check(self) -> None:
        """Raise TruncatedError unless the stream was complete."""
        if not self.complete:
            raise TruncatedError(self.describe())


class RecordStream:
    """Feed raw log bytes in, get new records out, in order and without
    duplicates. One instance per agent (per tracer pod), kept across resumed
    connections: call ``restart()`` before feeding a new connection's bytes."""

    def __init__(self) -> None:
        self._lines = codec.LineBuffer()
        self.last_seq: Optional[int] = None
        self.last_timestamp: Optional[str] = None  # of the last line consumed, for resuming
        self.ready_seen = False
        self.ended = False
        self.end: Optional[dict[str, Any]] = None
        self.gaps = 0  # places where seq jumped forward
        self.missing = 0  # records lost in those jumps
        self.duplicates = 0  # records dropped because their seq was already seen
        self.noise: collections.deque[str] = collections.deque(maxlen=NOISE_LINES)
        self.noise_lines = 0  # all of them, including those no longer kept
        self._at_last_timestamp = 0  # lines consumed that carry exactly last_timestamp
        self._skip_until: Optional[tuple[int, int]] = None  # resume: lines up to here were seen...
        self._skip_equal = 0  # ...including this many that carry exactly that timestamp

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """New records among the complete lines of this chunk. Raises
        ProtocolError for a record of another protocol version: mixing
        versions would misread fields, so the stream is refused."""
        out: list[dict[str, Any]] = []
        for line in self._lines.feed(chunk):
            record = self._consume(line)
            if record is not None:
                out.append(record)
        return out

    def restart(self) -> Optional[str]:
        """A new connection begins at a line boundary: forget the partial
        line of the broken one (returned, for diagnostics), and skip the
        lines a resumed log re-delivers without decoding them: those older
        than the last line consumed, and as many with its exact timestamp as
        were consumed (so a repeated traceback line is not noise twice)."""
        partial = self._lines.rest()
        if self.last_timestamp is not None:
            self._skip_until = timestamp_key(self.last_timestamp)
            self._skip_equal = self._at_last_timestamp
        return partial

    def flush(self) -> list[dict[str, Any]]:
        """Records in a last line that had no newline (no more bytes will come)."""
        rest = self._lines.rest()
        if rest is None:
            return []
        record = self._consume(rest)
        return [record] if record is not None else []

    def finish(self) -> StreamResult:
        """The verdict once the log is exhausted: complete or truncated.
        Idempotent; a trailing unterminated line is decoded into ``records``."""
        trailing = self.flush()
        return StreamResult(complete=self.ended, end=self.end, records=tuple(trailing),
                            last_seq=self.last_seq, ready_seen=self.ready_seen, gaps=self.gaps,
                            missing=self.missing, duplicates=self.duplicates, noise=tuple(self.noise))

    def _consume(self, line: str) -> Optional[dict[str, Any]]:
        timestamp, text = split_timestamp(line)
        if timestamp is not None:
            if self._skip_until is not None:  # parse only while resuming: it costs per line
                key = timestamp_key(timestamp)
                if key < self._skip_until or (key == self._skip_until and self._skip_equal > 0):
                    if key == self._skip_until:
                        self._skip_equal -= 1
                    self.duplicates += 1
                    return None
                self._skip_until = None  # timestamps only grow: past the resume point for good
            # One kubelet formats one instant one way, so equal strings are equal times.
            if timestamp == self.last_timestamp:
                self._at_last_timestamp += 1
            else:
                self._at_last_timestamp = 1
            self.last_timestamp = timestamp
        if not text:
            return None
        if self.ended:
            return None  # nothing follows end; a resumed read may repeat what came before it
        try:
            record = codec.decode(text)
        except codec.ProtocolError:
            if _other_version(text):
                raise
            self._add_noise(text)
            return None
        seq = record["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            self._add_noise(text)
            return None
        if self.last_seq is not None and seq <= self.last_seq:
            self.duplicates += 1
            return None
        expected = FIRST_SEQ if self.last_seq is None else self.last_seq + 1
        if seq > expected:
            self.gaps += 1
            self.missing += seq - expected
        self.last_seq = seq
        record_type = record["type"]
        if record_type == records.READY:
            self.ready_seen = True
        elif record_type == records.END:
            self.ended = True
            self.end = record
        return record

    def _add_noise(self, text: str) -> None:
        self.noise.append(text)
        self.noise_lines += 1


def _other_version(text: str) -> bool:
    """A line that is a record in every way but its version (as opposed to a
    traceback or a stray print, which is noise)."""
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return (isinstance(document, dict) and "type" in document and "seq" in document
            and document.get("v") != protocol.PROTOCOL_VERSION)
