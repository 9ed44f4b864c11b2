"""RecordStream turns pod-log bytes cut anywhere into the same records:
every split point of a multi-line payload, several lines per chunk, blank
lines, kubelet timestamp prefixes (with and without them, in one stream)."""

from __future__ import annotations

import itertools

from kubectl_bpf.protocol import codec
from kubectl_bpf.protocol import stream as record_stream

STAMPS = ["2026-11-24T21:00:00.123456789Z", "2026-11-24T21:00:00.2Z", "2026-11-24T21:00:01Z",
          "2026-11-24T21:00:01.5+00:00"]


def _payload(*, stamped: bool) -> bytes:
    lines = [codec.encode("preflight", 1, {"kernel": "6.18"}), codec.encode("ready", 2, {"prog_id": 7}),
             codec.encode("drop", 3, {"ifname": "vethé€", "reason": "NO_SOCKET"}),
             codec.encode("end", 4, {"status": "ok", "exit_code": 0})]
    if stamped:
        lines = [f"{stamp} {line}" for stamp, line in zip(STAMPS, lines)]
    return ("\n".join(lines) + "\n").encode()


def _seqs(chunks: list[bytes]) -> list[int]:
    stream = record_stream.RecordStream()
    seqs = [record["seq"] for chunk in chunks for record in stream.feed(chunk)]
    assert stream.finish().complete
    return seqs


def test_every_single_split_point_gives_the_same_records() -> None:
    for stamped in (False, True):
        data = _payload(stamped=stamped)
        for cut in range(len(data) + 1):
            assert _seqs([data[:cut], data[cut:]]) == [1, 2, 3, 4], (stamped, cut)


def test_every_pair_of_split_points_gives_the_same_records() -> None:
    data = _payload(stamped=True)
    for first, second in itertools.combinations(range(0, len(data) + 1, 7), 2):
        assert _seqs([data[:first], data[first:second], data[second:]]) == [1, 2, 3, 4]


def test_byte_by_byte_feeding_gives_the_same_records() -> None:
    data = _payload(stamped=True)
    assert _seqs([data[i:i + 1] for i in range(len(data))]) == [1, 2, 3, 4]


def test_several_records_in_one_chunk_come_out_in_order() -> None:
    stream = record_stream.RecordStream()
    records = stream.feed(_payload(stamped=False))
    assert [record["type"] for record in records] == ["preflight", "ready", "drop", "end"]
    assert records[2]["ifname"] == "vethé€"


def test_blank_lines_and_empty_chunks_are_ignored() -> None:
    stream = record_stream.RecordStream()
    chunks = [b"", b"\n\n  \n", codec.encode("stats", 1, {}).encode(), b"\r\n\n", b""]
    records = [record for chunk in chunks for record in stream.feed(chunk)]
    assert [record["seq"] for record in records] == [1]
    assert not stream.noise


def test_timestamp_prefix_is_stripped_and_remembered() -> None:
    stream = record_stream.RecordStream()
    record = stream.feed(f"{STAMPS[0]} {codec.encode('ready', 1, {})}\n".encode())[0]
    assert record == {"v": 1, "seq": 1, "type": "ready"}
    assert stream.last_timestamp == STAMPS[0]
    assert stream.ready_seen


def test_a_timestamped_line_with_empty_text_only_advances_the_timestamp() -> None:
    stream = record_stream.RecordStream()
    assert stream.feed(f"{STAMPS[1]} \n".encode()) == []
    assert stream.last_timestamp == STAMPS[1]
    assert not stream.noise


def test_timestamps_compare_as_times_not_as_strings() -> None:
    key = record_stream.timestamp_key
    # RFC3339Nano drops trailing zeros: ".2Z" sorts after ".123456789Z" as a string only by luck;
    # ".1Z" vs ".09Z" shows the difference.
    assert key("2026-11-24T21:00:00.1Z") > key("2026-11-24T21:00:00.09Z")
    assert key("2026-11-24T21:00:00Z") < key("2026-11-24T21:00:00.000000001Z")
    assert key("2026-11-24T22:00:00+01:00") == key("2026-11-24T21:00:00Z")
    assert key("2026-11-24T20:30:00.5-00:30") == key("2026-11-24T21:00:00.5Z")


def test_only_a_full_kubelet_timestamp_is_taken_as_a_prefix() -> None:
    assert record_stream.split_timestamp("2026-11-24T21:00:00Z {}") == ("2026-11-24T21:00:00Z", "{}")
    assert record_stream.split_timestamp("2026 was a year") == (None, "2026 was a year")
    assert record_stream.split_timestamp('{"seq":1}') == (None, '{"seq":1}')
