"""The JSON-lines envelope: one record per line, the envelope first, and a
splitter that reassembles lines from pod-log chunks cut anywhere (kopf's
test_iterjsonlines cases)."""

from __future__ import annotations

import json

import pytest

from kubectl_bpf import protocol
from kubectl_bpf.protocol import codec


def test_encoded_record_is_one_line_with_envelope_first() -> None:
    line = codec.encode("drop", 7, {"src": "10.0.0.1", "sport": None, "note": "a\nb"})
    assert "\n" not in line
    assert line.startswith(f'{{"v":{protocol.PROTOCOL_VERSION},"seq":7,"type":"drop",')
    assert json.loads(line) == {"v": protocol.PROTOCOL_VERSION, "seq": 7, "type": "drop",
                                "src": "10.0.0.1", "sport": None, "note": "a\nb"}


def test_record_without_payload_is_just_the_envelope() -> None:
    assert json.loads(codec.encode("end", 0, {})) == {"v": protocol.PROTOCOL_VERSION, "seq": 0,
                                                       "type": "end"}


def test_decode_inverts_encode_including_non_ascii() -> None:
    payload = {"ifname": "vethé", "reasons": {"NO_SOCKET": 3}, "flows": [], "len_bytes": 60}
    record = codec.decode(codec.encode("summary", 42, payload))
    assert record == {"v": protocol.PROTOCOL_VERSION, "seq": 42, "type": "summary", **payload}


@pytest.mark.parametrize("line", ["not json", "{", "[1, 2]", '"text"', "42",
                                  '{"v": 1, "seq": 1}', '{"v": 1, "type": "drop"}'])
def test_decode_refuses_lines_that_are_not_records(line: str) -> None:
    with pytest.raises(codec.ProtocolError):
        codec.decode(line)


def test_decode_refuses_another_protocol_version_naming_both() -> None:
    other = protocol.PROTOCOL_VERSION + 1
    with pytest.raises(codec.ProtocolError) as caught:
        codec.decode(json.dumps({"v": other, "seq": 1, "type": "drop"}))
    message = str(caught.value)
    assert f"v{other}" in message and f"v{protocol.PROTOCOL_VERSION}" in message


def test_decode_refuses_a_record_without_version() -> None:
    with pytest.raises(codec.ProtocolError):
        codec.decode('{"seq": 1, "type": "drop"}')


def _feed_all(chunks: list[bytes]) -> list[str]:
    buffer = codec.LineBuffer()
    lines = [line for chunk in chunks for line in buffer.feed(chunk)]
    rest = buffer.rest()
    return [*lines, rest] if rest is not None else lines


def test_line_buffer_yields_each_complete_line_of_one_chunk() -> None:
    assert _feed_all([b'{"a":1}\n{"b":2}\n']) == ['{"a":1}', '{"b":2}']


def test_line_buffer_joins_a_line_split_across_chunks() -> None:
    buffer = codec.LineBuffer()
    assert list(buffer.feed(b'{"seq":1,')) == []
    assert list(buffer.feed(b'"type":"drop"}\n{"seq"')) == ['{"seq":1,"type":"drop"}']
    assert list(buffer.feed(b':2}\n')) == ['{"seq":2}']
    assert buffer.rest() is None


def test_line_buffer_joins_a_character_split_across_chunks() -> None:
    encoded = '{"ifname":"vethé€"}\n'.encode()
    cut = encoded.index("€".encode()) + 1  # inside the three bytes of the euro sign
    assert _feed_all([encoded[:cut], encoded[cut:]]) == ['{"ifname":"vethé€"}']


def test_line_buffer_survives_byte_by_byte_feeding() -> None:
    data = b'{"a":1}\n\n{"b":"\xc3\xa9"}\n'
    assert _feed_all([data[i:i + 1] for i in range(len(data))]) == ['{"a":1}', '{"b":"é"}']


def test_line_buffer_ignores_empty_chunks_and_blank_lines() -> None:
    assert _feed_all([b"", b"\n", b"  \n", b"", b'{"a":1}\r\n', b""]) == ['{"a":1}']


def test_line_buffer_keeps_a_final_line_without_newline_for_rest() -> None:
    buffer = codec.LineBuffer()
    assert list(buffer.feed(b'{"a":1}\n{"cut":')) == ['{"a":1}']
    assert buffer.rest() == '{"cut":'
    assert buffer.rest() is None  # taken once


def test_line_buffer_output_decodes_back_to_records() -> None:
    stream = "".join(codec.encode("drop", seq, {"seq_copy": seq}) + "\n" for seq in range(5)).encode()
    records = [codec.decode(line) for line in _feed_all([stream[:13], stream[13:50], stream[50:]])]
    assert [record["seq"] for record in records] == [0, 1, 2, 3, 4]
