"""Signals while a cluster session streams: the first stops gracefully and
the summary still arrives; a second forces (exit 130); the session is
closed on every path. Real signals, sent to this process."""

from __future__ import annotations

import os
import signal
from typing import Any, Iterator, Optional

import pytest

from kubectl_bpf.cli import live
from kubectl_bpf.kube import errors, session
from kubectl_bpf.protocol import exitcodes


class FakeSession:
    """Plays a scripted stream; ``signals`` are raised before the item with that index."""

    def __init__(self, items: list[Optional[session.Item]], signals: dict[int, int],
                 start_error: Optional[errors.KubeError] = None) -> None:
        self._items = items
        self._signals = signals
        self._start_error = start_error
        self.stopped = 0
        self.closed: list[bool] = []

    def start(self) -> None:
        if self._start_error is not None:
            raise self._start_error

    def items(self) -> Iterator[Optional[session.Item]]:
        for index, item in enumerate(self._items):
            if index in self._signals:
                os.kill(os.getpid(), self._signals[index])
            yield item

    def stop(self) -> None:
        self.stopped += 1

    def close(self, *, force: bool = False) -> None:
        self.closed.append(force)

    def __enter__(self) -> "FakeSession":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(force=exc_info[0] is not None)


def record(record_type: str, **fields: Any) -> session.NodeRecord:
    return session.NodeRecord("node-1", {"type": record_type, **fields})


STREAM: list[Optional[session.Item]] = [
    record("ready"), record("drop", reason="NO_SOCKET"), None, record("summary", drops=1),
    record("end", exit_code=0), session.NodeFinished("node-1", None, 0)]


def run(fake: FakeSession) -> tuple[int, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    code = live.run_session(fake, on_record=lambda node, rec: seen.append(rec))  # type: ignore[arg-type]
    return code, seen


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_first_signal_stops_gracefully_and_the_summary_arrives(signum: int) -> None:
    fake = FakeSession(STREAM, {2: signum})
    code, seen = run(fake)
    assert code == exitcodes.OK
    assert fake.stopped == 1
    assert [r["type"] for r in seen] == ["ready", "drop", "summary", "end"]
    assert fake.closed == [False]


def test_second_signal_forces_exit_130_and_kills_the_pods(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSession(STREAM, {2: signal.SIGINT, 3: signal.SIGINT})
    code, seen = run(fake)
    assert code == exitcodes.INTERRUPTED == 130
    assert [r["type"] for r in seen] == ["ready", "drop"]
    assert fake.closed == [True]
    assert "forced stop" in capsys.readouterr().err


def test_signal_before_streaming_forces_at_once() -> None:
    class SignalDuringStart(FakeSession):
        def start(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)

    fake = SignalDuringStart(STREAM, {})
    code, seen = run(fake)
    assert (code, seen, fake.closed) == (exitcodes.INTERRUPTED, [], [True])


def test_start_failure_propagates_after_closing() -> None:
    fake = FakeSession(STREAM, {}, start_error=errors.StartError("cannot pull image"))
    with pytest.raises(errors.StartError):
        run(fake)
    assert fake.closed == [True]


def test_a_failed_node_sets_the_exit_code_and_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSession([record("ready"), session.NodeFinished("node-1", "agent OOMKilled", 1)], {})
    code, _ = run(fake)
    assert code == exitcodes.FAILURE
    assert "node-1: agent OOMKilled" in capsys.readouterr().err


def test_signal_handlers_are_restored_afterwards() -> None:
    before = signal.getsignal(signal.SIGINT)
    run(FakeSession(STREAM, {}))
    assert signal.getsignal(signal.SIGINT) is before
