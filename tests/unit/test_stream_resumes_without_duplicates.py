"""After a broken log stream is resumed, the re-delivered lines are dropped
(by timestamp without decoding them, by seq otherwise), a partial line of
the broken connection is discarded instead of glued to the new one, and
records that never came back are counted as gaps."""

from __future__ import annotations

from kubectl_bpf.protocol import codec
from kubectl_bpf.protocol import stream as record_stream


def _line(seq: int, *, second: float) -> bytes:
    stamp = f"2026-11-24T21:00:{int(second):02d}.{round((second % 1) * 1e9):09d}Z"
    return f"{stamp} {codec.encode('stats', seq, {'n': seq})}\n".encode()


def _lines(first: int, last: int) -> bytes:
    return b"".join(_line(seq, second=seq / 10) for seq in range(first, last + 1))


def test_a_resumed_stream_delivers_each_record_once() -> None:
    stream = record_stream.RecordStream()
    seen = [record["seq"] for record in stream.feed(_lines(1, 20))]
    stream.restart()
    seen += [record["seq"] for record in stream.feed(_lines(5, 30))]  # since_seconds reaches back
    assert seen == list(range(1, 31))
    assert stream.duplicates == 16
    assert stream.gaps == 0


def test_resumed_lines_older_than_the_last_one_are_skipped_without_decoding() -> None:
    stream = record_stream.RecordStream()
    stream.feed(_lines(1, 3))
    stream.restart()
    # Re-delivered lines are garbage here: decoding them would make noise or raise.
    old = b"2026-11-24T21:00:00.1Z {not json at all\n2026-11-24T21:00:00.2Z {\"v\":99}\n"
    assert stream.feed(old + _lines(3, 4)) == [{"v": 1, "seq": 4, "type": "stats", "n": 4}]
    assert not stream.noise
    assert stream.duplicates == 3  # two skipped by timestamp, seq 3 by seq


def test_duplicates_are_dropped_by_seq_even_without_timestamps() -> None:
    stream = record_stream.RecordStream()
    plain = "".join(codec.encode("stats", seq, {}) + "\n" for seq in (1, 2, 3)).encode()
    assert len(stream.feed(plain)) == 3
    stream.restart()
    assert stream.feed(plain) == []
    assert stream.duplicates == 3
    assert stream.last_seq == 3


def test_a_partial_line_of_the_broken_connection_is_not_glued_to_the_new_one() -> None:
    stream = record_stream.RecordStream()
    data = _lines(1, 3)
    cut = len(data) - 10
    assert [record["seq"] for record in stream.feed(data[:cut])] == [1, 2]
    partial = stream.restart()
    assert partial is not None and partial.endswith(data[cut - 5:cut].decode())
    assert [record["seq"] for record in stream.feed(_lines(2, 4))] == [3, 4]
    assert not stream.noise


def test_records_lost_between_connections_are_counted_as_gaps() -> None:
    stream = record_stream.RecordStream()
    stream.feed(_lines(1, 10))
    stream.restart()
    stream.feed(_lines(15, 20) + _lines(25, 25))
    assert (stream.gaps, stream.missing) == (2, 4 + 4)
    result = stream.finish()
    assert (result.gaps, result.missing) == (2, 8)
    assert "8 records missing in 2 gaps" in result.describe()


def test_a_stream_that_starts_late_counts_the_missing_beginning() -> None:
    stream = record_stream.RecordStream()
    stream.feed(_lines(4, 5))
    assert (stream.gaps, stream.missing) == (1, 3)


def test_a_stream_numbered_from_zero_has_no_gap() -> None:
    stream = record_stream.RecordStream()
    stream.feed(b"".join(codec.encode("stats", seq, {}).encode() + b"\n" for seq in range(3)))
    assert (stream.gaps, stream.last_seq) == (0, 2)


def test_lines_after_end_are_ignored() -> None:
    stream = record_stream.RecordStream()
    stream.feed((codec.encode("end", 1, {"status": "ok", "exit_code": 0}) + "\n").encode())
    assert stream.feed((codec.encode("stats", 2, {}) + "\nTraceback\n").encode()) == []
    assert stream.last_seq == 1 and not stream.noise


def test_re_delivered_noise_is_not_kept_twice() -> None:
    stream = record_stream.RecordStream()
    crash = b"2026-11-24T21:00:01Z Traceback (most recent call last):\n2026-11-24T21:00:01Z KeyError: x\n"
    stream.feed(_lines(1, 2) + crash)
    stream.restart()
    stream.feed(_lines(1, 2) + crash + b"2026-11-24T21:00:02Z after\n")
    assert list(stream.noise) == ["Traceback (most recent call last):", "KeyError: x", "after"]


def test_a_line_sharing_the_last_timestamp_but_not_yet_seen_is_kept() -> None:
    stream = record_stream.RecordStream()
    same = "2026-11-24T21:00:05Z"
    first = f"{same} {codec.encode('stats', 1, {})}\n".encode()
    second = f"{same} {codec.encode('stats', 2, {})}\n".encode()
    stream.feed(first)
    stream.restart()
    assert [record["seq"] for record in stream.feed(first + second)] == [2]
