"""A record of another protocol version stops the stream with a message
naming both versions; mixing versions would misread fields silently."""

from __future__ import annotations

import json

import pytest

from kubectl_bpf import protocol
from kubectl_bpf.protocol import codec
from kubectl_bpf.protocol import stream as record_stream


@pytest.mark.parametrize("stamped", [False, True])
def test_a_record_of_another_version_raises_naming_both(stamped: bool) -> None:
    other = protocol.PROTOCOL_VERSION + 1
    line = json.dumps({"v": other, "seq": 1, "type": "preflight"})
    if stamped:
        line = "2026-11-24T21:00:00.5Z " + line
    stream = record_stream.RecordStream()
    with pytest.raises(codec.ProtocolError) as caught:
        stream.feed(f"{line}\n".encode())
    assert f"v{other}" in str(caught.value) and f"v{protocol.PROTOCOL_VERSION}" in str(caught.value)


def test_the_check_is_per_record_so_a_mismatch_after_good_records_still_raises() -> None:
    stream = record_stream.RecordStream()
    good = codec.encode("preflight", 1, {}) + "\n"
    bad = json.dumps({"v": 0, "seq": 2, "type": "drop"}) + "\n"
    assert len(stream.feed(good.encode())) == 1
    with pytest.raises(codec.ProtocolError, match="v0"):
        stream.feed(bad.encode())
