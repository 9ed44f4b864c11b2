"""finish() says whether an end record arrived. A stream that just stops is
truncated, and what the agent printed besides records (a traceback on
stderr, mixed into the log) is kept, bounded, to explain why."""

from __future__ import annotations

import pytest

from kubectl_bpf.protocol import codec
from kubectl_bpf.protocol import stream as record_stream

TRACEBACK = b"""Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/kubectl_bpf/agent/__main__.py", line 3, in <module>
    main()
OSError: [Errno 1] Operation not permitted
"""


def _records(*types: str) -> bytes:
    return "".join(codec.encode(kind, seq, {}) + "\n" for seq, kind in enumerate(types, 1)).encode()


def test_a_stream_with_an_end_record_is_complete() -> None:
    stream = record_stream.RecordStream()
    stream.feed(_records("preflight", "ready", "summary")
                + (codec.encode("end", 4, {"status": "ok", "exit_code": 0}) + "\n").encode())
    result = stream.finish()
    assert result.complete and not result.truncated and stream.ended
    assert result.end is not None and result.end["exit_code"] == 0
    assert result.ready_seen and result.last_seq == 4
    result.check()


def test_a_stream_that_stops_without_end_is_truncated() -> None:
    stream = record_stream.RecordStream()
    stream.feed(_records("preflight", "ready", "stats"))
    result = stream.finish()
    assert result.truncated and result.end is None and not stream.ended
    assert "without an end record after seq 3" in result.describe()
    with pytest.raises(record_stream.TruncatedError, match="after seq 3"):
        result.check()


def test_an_empty_stream_is_truncated_and_says_there_were_no_records() -> None:
    result = record_stream.RecordStream().finish()
    assert result.truncated
    assert "no records" in result.describe()


def test_a_traceback_mixed_into_the_log_becomes_noise_not_a_crash() -> None:
    stream = record_stream.RecordStream()
    records = stream.feed(_records("preflight") + TRACEBACK)
    assert [record["type"] for record in records] == ["preflight"]
    assert list(stream.noise)[-1] == "OSError: [Errno 1] Operation not permitted"
    described = stream.finish().describe()
    assert "last output:" in described and "Operation not permitted" in described


def test_noise_keeps_only_the_last_lines() -> None:
    stream = record_stream.RecordStream()
    stream.feed(b"".join(f"line {n}\n".encode() for n in range(100)))
    assert len(stream.noise) == record_stream.NOISE_LINES
    assert stream.noise[-1] == "line 99" and stream.noise[0] == f"line {100 - record_stream.NOISE_LINES}"
    assert stream.noise_lines == 100


@pytest.mark.parametrize("line", ["{", "[1, 2]", '"text"', '{"seq": 1}', '{"v": 1, "type": "drop"}',
                                  '{"v": 1, "seq": "7", "type": "drop"}', "42"])
def test_json_that_is_not_a_record_is_noise(line: str) -> None:
    stream = record_stream.RecordStream()
    assert stream.feed(f"{line}\n".encode()) == []
    assert list(stream.noise) == [line]


def test_a_last_line_without_newline_is_decoded_by_finish() -> None:
    stream = record_stream.RecordStream()
    assert stream.feed(codec.encode("end", 1, {"status": "ok", "exit_code": 0}).encode()) == []
    result = stream.finish()
    assert result.complete
    assert [record["type"] for record in result.records] == ["end"]
    again = stream.finish()  # idempotent: nothing decoded twice
    assert again.complete and again.records == ()
