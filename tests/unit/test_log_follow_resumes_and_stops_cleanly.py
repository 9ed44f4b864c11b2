"""LogFollower against a fake pod-log API that cuts the stream where real
ones do (EOF mid-line, read timeouts, kubelet errors): it resumes with
since_seconds reaching past the last timestamp, delivers each record once,
reads a terminated container's rest once without follow, fails on a deleted
pod or a stream that keeps breaking without progress, releases every
response, and can be interrupted from another thread."""

from __future__ import annotations

import json
import math
import threading
import time
import types
from typing import Any, Optional, Union

import pytest
import urllib3.exceptions
from kubernetes.client import exceptions as k8s_exceptions

from kubectl_bpf.kube import errors, logs
from kubectl_bpf.protocol import codec
from kubectl_bpf.protocol import stream as record_stream

BASE = 1795986000  # 2026-11-24T21:00:00Z


def stamp(seq: int) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE + seq // 10))
    return f"{whole}.{(seq % 10) * 100000000:09d}Z"


def lines(first: int, last: int, *, end: bool = False) -> bytes:
    out = [f"{stamp(seq)} {codec.encode('stats', seq, {})}\n" for seq in range(first, last + 1)]
    if end:
        out.append(f"{stamp(last + 1)} {codec.encode('end', last + 1, {'status': 'ok', 'exit_code': 0})}\n")
    return "".join(out).encode()


def chop(data: bytes, size: int = 37) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


class FakeResponse:
    """The urllib3 response the client returns with _preload_content=False."""

    def __init__(self, chunks: list[bytes] = (), *, then: Optional[Exception] = None, block: bool = False,
                 data: bytes = b"") -> None:
        self.chunks = list(chunks)
        self.then = then
        self.block = block
        self.data = data
        self.closed = self.released = False
        self.shut = threading.Event()
        sock = types.SimpleNamespace(shutdown=lambda how: self.shut.set())
        self.connection = types.SimpleNamespace(sock=sock)

    def stream(self, amt: int, decode_content: bool = True) -> Any:
        yield from self.chunks
        if self.block and self.shut.wait(5):
            raise urllib3.exceptions.ProtocolError("Connection broken: InvalidChunkLength(got length b'')")
        if self.then is not None:
            raise self.then

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


def pod_state(state: str) -> FakeResponse:
    states = {"running": {"running": {"startedAt": "x"}},
              "terminated": {"terminated": {"exitCode": 0, "reason": "Completed"}},
              "waiting": {"waiting": {"reason": "ContainerCreating"}}}
    statuses = [{"name": "agent", "state": states[state]}]
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": statuses}}
    return FakeResponse(data=json.dumps(pod).encode())


class FakeCore:
    def __init__(self, logs: list[Union[FakeResponse, Exception]], states: list[str]) -> None:
        self.logs = logs
        self.states = states
        self.log_calls: list[dict[str, Any]] = []
        self.pod_calls = 0
        self.responses: list[FakeResponse] = []

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> FakeResponse:
        assert (name, namespace) == ("p", "ns")
        self.log_calls.append(kwargs)
        item = self.logs.pop(0)
        if isinstance(item, Exception):
            raise item
        self.responses.append(item)
        return item

    def read_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> FakeResponse:
        self.pod_calls += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state == "gone":
            raise k8s_exceptions.ApiException(status=404, reason="Not Found")
        response = pod_state(state)
        self.responses.append(response)
        return response


def follower(core: FakeCore, **kwargs: Any) -> logs.LogFollower:
    kube = types.SimpleNamespace(core=core, call_options=lambda: {}, connect_timeout_s=lambda: 10.0)
    options: dict[str, Any] = {"backoff_base_s": 0.0, "clock": lambda: BASE + 10.0}
    options.update(kwargs)
    return logs.LogFollower(kube, "ns", "p", stream=record_stream.RecordStream(), **options)  # type: ignore[arg-type]


def seqs(records: list[dict[str, Any]]) -> list[int]:
    return [record["seq"] for record in records]


def test_a_stream_cut_mid_line_resumes_with_since_seconds_and_no_duplicates() -> None:
    first = lines(1, 20)
    second = lines(12, 40, end=True)
    core = FakeCore([FakeResponse(chop(first[:-15])), FakeResponse(chop(second))], ["running"])
    reader = follower(core)
    assert seqs(list(reader.records())) == list(range(1, 42))
    assert reader.stream.finish().complete
    assert reader.reconnects == 1 and reader.stream.duplicates == 8  # 12..19 again (20 was cut)
    assert "since_seconds" not in core.log_calls[0]
    last_seen = BASE + 1  # seq 19's timestamp, in whole seconds
    assert core.log_calls[1]["since_seconds"] == math.ceil(BASE + 10.0 - last_seen + logs.RESUME_MARGIN_S)
    for call in core.log_calls:
        assert call["follow"] is True and call["timestamps"] is True and call["_preload_content"] is False
        assert call["container"] == "agent"
        assert call["_request_timeout"] == (logs.CONNECT_TIMEOUT_S, logs.READ_TIMEOUT_S)


def test_a_read_timeout_is_a_broken_stream_that_is_resumed() -> None:
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/log", "Read timed out.")
    core = FakeCore([FakeResponse([lines(1, 5)], then=timeout), FakeResponse([lines(1, 9, end=True)])],
                    ["running"])
    reader = follower(core, read_timeout_s=2.0)
    assert seqs(list(reader.records())) == list(range(1, 11))
    assert "Read timed out" in (reader.last_break or "")
    assert core.log_calls[0]["_request_timeout"] == (logs.CONNECT_TIMEOUT_S, 2.0)


def test_the_rest_of_a_terminated_container_is_read_once_without_follow() -> None:
    core = FakeCore([FakeResponse([lines(1, 5)]), FakeResponse([lines(3, 8, end=True)])], ["terminated"])
    reader = follower(core)
    assert seqs(list(reader.records())) == list(range(1, 10))
    assert [call["follow"] for call in core.log_calls] == [True, False]
    assert reader.stream.finish().complete


def test_a_terminated_container_without_end_leaves_a_truncated_stream() -> None:
    crash = lines(1, 3) + b"2026-11-24T21:00:01Z Traceback (most recent call last):\n" \
                          b"2026-11-24T21:00:01Z MemoryError"
    core = FakeCore([FakeResponse([crash]), FakeResponse([crash])], ["terminated"])
    reader = follower(core)
    assert seqs(list(reader.records())) == [1, 2, 3]
    result = reader.stream.finish()
    assert result.truncated and list(result.noise)[-1] == "MemoryError"
    assert len(core.log_calls) == 2  # no reconnect loop after the final read


def test_a_deleted_pod_raises_with_the_last_seq() -> None:
    core = FakeCore([FakeResponse([lines(1, 4)])], ["gone"])
    reader = follower(core)
    received: list[dict[str, Any]] = []
    with pytest.raises(logs.PodGoneError, match=r"deleted before the agent finished.*last seq 4"):
        received.extend(reader.records())
    assert seqs(received) == [1, 2, 3, 4]


def test_a_stream_that_keeps_breaking_without_progress_gives_up() -> None:
    core = FakeCore([FakeResponse([lines(1, 2)])] + [FakeResponse([]) for _ in range(10)], ["running"])
    reader = follower(core, max_reconnects=3, stall_s=0.0)
    with pytest.raises(errors.KubeError, match="broke 4 times in 0s without new output"):
        list(reader.records())
    assert len(core.log_calls) == 5  # the first read, then 1 + 3 retries without progress


class Ticking:
    """A monotonic clock that advances ``step_s`` on every reading."""

    def __init__(self, step_s: float) -> None:
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_a_kubelet_restart_is_ridden_out_and_resumed_without_duplicates() -> None:
    """The container keeps running while its kubelet restarts: ~40 s of
    refused and failing log requests, then the log answers again from
    before the break. More breaks than max_reconnects, but within stall_s."""
    kubelet_down = k8s_exceptions.ApiException(status=502, reason="Bad Gateway")
    refused = urllib3.exceptions.MaxRetryError(None, "/log", "connection refused")  # type: ignore[arg-type]
    outage: list[Union[FakeResponse, Exception]] = [kubelet_down, refused] * 4
    core = FakeCore([FakeResponse([lines(1, 3)], then=urllib3.exceptions.ProtocolError("reset")), *outage,
                     FakeResponse([lines(1, 6, end=True)])], ["running"])
    notes: list[str] = []
    reader = follower(core, max_reconnects=3, stall_s=60.0, monotonic=Ticking(5.0), on_progress=notes.append)
    assert seqs(list(reader.records())) == list(range(1, 8))
    assert reader.stream.finish().end is not None
    assert any("retrying for up to 60s" in note for note in notes), notes
    assert any("log stream resumed" in note for note in notes), notes


def test_a_log_unreadable_past_the_stall_limit_fails_with_the_container_state() -> None:
    kubelet_down = k8s_exceptions.ApiException(status=502, reason="Bad Gateway")
    core = FakeCore([FakeResponse([lines(1, 1)])] + [kubelet_down] * 50, ["running"])
    reader = follower(core, max_reconnects=3, stall_s=60.0, monotonic=Ticking(5.0))
    with pytest.raises(errors.KubeError, match=r"without new output .*container running"):
        list(reader.records())
    assert 10 < len(core.log_calls) < 20  # retried past max_reconnects, for about stall_s


def test_a_stream_that_makes_progress_keeps_being_resumed() -> None:
    parts = [FakeResponse([lines(n, n)]) for n in range(1, 12)] + [FakeResponse([lines(12, 12, end=True)])]
    core = FakeCore(list(parts), ["running"])
    reader = follower(core, max_reconnects=2)
    assert seqs(list(reader.records())) == list(range(1, 14))
    assert reader.reconnects == 11


def test_kubelet_errors_on_the_log_request_are_retried() -> None:
    kubelet_down = k8s_exceptions.ApiException(status=500, reason="Internal Server Error")
    refused = urllib3.exceptions.MaxRetryError(None, "/log", "connection refused")  # type: ignore[arg-type]
    core = FakeCore([kubelet_down, refused, FakeResponse([lines(1, 1, end=True)])], ["running"])
    assert seqs(list(follower(core).records())) == [1, 2]


def test_a_forbidden_log_request_is_a_permission_error() -> None:
    forbidden = k8s_exceptions.ApiException(status=403, reason="Forbidden")
    core = FakeCore([forbidden], ["running"])
    with pytest.raises(errors.PermissionDeniedError):
        list(follower(core).records())


def test_the_end_record_stops_reading_at_once() -> None:
    response = FakeResponse([lines(1, 2, end=True), b"never read\n"])
    core = FakeCore([response], ["running"])
    assert seqs(list(follower(core).records())) == [1, 2, 3]
    assert core.pod_calls == 0 and response.closed and response.released


def test_every_response_is_closed_and_released() -> None:
    core = FakeCore([FakeResponse([lines(1, 3)]), FakeResponse([lines(4, 5, end=True)])], ["running"])
    list(follower(core).records())
    assert core.responses and all(r.closed and r.released for r in core.responses)


def test_should_stop_ends_the_iteration_between_chunks() -> None:
    core = FakeCore([FakeResponse([lines(1, 1), lines(2, 2), lines(3, 3)])], ["running"])
    received: list[dict[str, Any]] = []
    reader = follower(core, should_stop=lambda: len(received) >= 2)
    for record in reader.records():
        received.append(record)
    assert seqs(received) == [1, 2]


def test_close_from_another_thread_interrupts_a_blocked_read() -> None:
    response = FakeResponse([lines(1, 2)], block=True)
    core = FakeCore([response], ["running"])
    reader = follower(core)
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def consume() -> None:
        received.extend(reader.records())
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    reader.close()
    assert done.wait(2)
    assert time.monotonic() - started < 1
    assert seqs(received) == [1, 2] and reader.closed and response.released
    assert core.pod_calls == 0  # a closed follower does not go on checking the pod


def test_follow_is_the_iterator_of_a_follower() -> None:
    core = FakeCore([FakeResponse([lines(1, 1, end=True)])], ["running"])
    kube = types.SimpleNamespace(core=core, call_options=lambda: {}, connect_timeout_s=lambda: 10.0)
    stream = record_stream.RecordStream()
    assert seqs(list(logs.follow(kube, "ns", "p", stream=stream))) == [1, 2]  # type: ignore[arg-type]
    assert stream.ended


def test_tail_lines_returns_the_last_lines_or_nothing() -> None:
    core = FakeCore([FakeResponse(data=b"a\n\nb\n"), k8s_exceptions.ApiException(status=400)], ["running"])
    kube = types.SimpleNamespace(core=core, call_options=lambda: {}, connect_timeout_s=lambda: 3.0)
    assert logs.tail_lines(kube, "ns", "p", lines=5) == ["a", "b"]  # type: ignore[arg-type]
    assert core.log_calls[0]["tail_lines"] == 5
    assert core.log_calls[0]["_request_timeout"] == (3.0, logs.READ_TIMEOUT_S)  # --request-timeout 3s
    assert logs.tail_lines(kube, "ns", "p") == []  # type: ignore[arg-type]
