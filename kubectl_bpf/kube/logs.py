"""Following the agent's log: raw byte chunks in, protocol records out.

Pod logs are the only channel from the agent, and they are fragile: an idle
stream hangs forever without a read timeout, the client library's line
iteration blocks on partial lines, and the stream ends (EOF) when the
apiserver, the kubelet or a proxy drops it, or at log rotation. So this
module reads chunks itself with a read timeout, hands them to
protocol.stream.RecordStream (which splits lines and drops duplicates), and
after every EOF asks the pod what happened: still running means resume,
terminated means read what is left once, gone means fail.

The client library has no ``sinceTime`` for pod logs (not in the generated
API), so a resume asks for ``since_seconds`` reaching back past the last
timestamp seen, plus a margin for clock skew between this machine and the
node; the stream skips re-delivered lines by timestamp and seq.

Everything here may block on the network, so LogFollower.close() can be
called from another thread to stop a read in progress.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from typing import Any, Callable, Iterator, Optional

import urllib3.exceptions

from kubectl_bpf.kube import client, errors, transport
from kubectl_bpf.protocol import stream as record_stream

AGENT_CONTAINER = "agent"

# The agent writes a stats record every 15 s by default (RunSpec.stats_interval_s):
# two missed heartbeats mean the connection, not the agent, is probably dead.
# Pass 2x the interval when it is changed.
READ_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = transport.CONNECT_TIMEOUT_S  # the default; sessions pass Kube.connect_timeout_s()

# Reconnects in a row without a single new line before giving up; with the
# backoff doubling from 0.5 s (capped at 8 s) that is about 15 s of retrying.
MAX_RECONNECTS = 5
# ...and not before this long without new output either: a kubelet restart
# (the container keeps running, its log is unreadable meanwhile) took longer
# than 15 s, and ended a healthy session with "the agent may be stuck".
# Sessions pass their lease TTL plus a margin: by then the agent has stopped
# by itself, and its summary is waiting in the log once the kubelet answers.
STALL_S = 60.0
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0

# since_seconds is evaluated with the node's clock against a timestamp the
# node wrote, but computed here with this machine's clock: the margin covers
# skew between the two. Over-reading is harmless (duplicates are dropped).
RESUME_MARGIN_S = 30.0

# Bytes asked for per read. A chunked response returns whatever arrived, so
# this only caps how much one read may return.
CHUNK_BYTES = 64 * 1024


class PodGoneError(errors.KubeError):
    """The tracer pod was deleted while its agent was still running."""


def _never() -> bool:
    return False


class LogFollower:
    """Follows one tracer pod's agent container until its ``end`` record, the
    container's termination, or close(). One per pod, usually one thread
    each; the RecordStream carries the state across reconnects."""

    def __init__(self, kube: client.Kube, namespace: str, pod: str, container: str = AGENT_CONTAINER,
                 *, stream: record_stream.RecordStream, read_timeout_s: float = READ_TIMEOUT_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, max_reconnects: int = MAX_RECONNECTS,
                 backoff_base_s: float = BACKOFF_BASE_S, resume_margin_s: float = RESUME_MARGIN_S,
                 should_stop: Callable[[], bool] = _never,
                 clock: Callable[[], float] = time.time, stall_s: float = STALL_S,
                 on_progress: Callable[[str], None] = lambda _text: None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.stream = stream
        self._read_timeout_s = read_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_reconnects = max_reconnects
        self._backoff_base_s = backoff_base_s
        self._resume_margin_s = resume_margin_s
        self._should_stop = should_stop
        self._clock = clock  # wall clock: compared with the node's log timestamps
        self._stall_s = stall_s
        self._on_progress = on_progress  # retry and resume notes for stderr
        self._monotonic = monotonic
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self.reconnects = 0  # all of them, for the report
        self.last_break: Optional[str] = None  # why the last connection ended early

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop following, from any thread. A read in progress is woken by
        shutting its socket down (closing the response from another thread
        would wait for the lock the blocked read holds); records() then
        returns without raising."""
        self._closed.set()
        with self._lock:
            response = self._response
        _shutdown(response)

    def records(self) -> Iterator[dict[str, Any]]:
        """New records in order, until ``end``, the container's exit or close().
        Afterwards ``stream.finish()`` says whether the stream was complete.
        Raises PodGoneError if the pod disappears first, KubeError when the
        stream keeps breaking without progress, ProtocolError on a version
        mismatch."""
        failures = 0
        stalled_since = self._monotonic()  # the last time a line arrived
        final = False  # the container has terminated: one last read without follow
        while not self._stopping():
            progress = (self.stream.last_seq, self.stream.noise_lines)
            try:
                yield from self._read_once(follow=not final)
            except _Broken as broken:
                self.last_break = str(broken)
            progressed = (self.stream.last_seq, self.stream.noise_lines) != progress
            if progressed and failures >= 2:
                self._on_progress(f"log stream resumed after {self._monotonic() - stalled_since:.0f}s; "
                                  "lines read twice are dropped, a gap would be reported")
            if self.stream.ended or self._stopping():
                return
            if final:
                yield from self.stream.flush()
                return
            state = self._container_state()
            if state == "gone":
                raise PodGoneError(f"tracer pod {self.namespace}/{self.pod} deleted before the agent "
                                   "finished" + (f" (last seq {self.stream.last_seq})"
                                                 if self.stream.last_seq is not None else ""))
            if state == "terminated":
                final = True
            elif not progressed:
                failures += 1
                stalled_s = self._monotonic() - stalled_since
                if failures > self._max_reconnects and stalled_s >= self._stall_s:
                    raise errors.KubeError(
                        f"log stream of tracer pod {self.namespace}/{self.pod} broke {failures} times "
                        f"in {stalled_s:.0f}s without new output (last: {self.last_break or 'EOF'}, "
                        f"container {state}); the kubelet or the agent is not answering")
                if failures == 2:  # one break is routine (rotation, a proxy); two in a row are news
                    self._on_progress(f"log stream lost ({self.last_break or 'EOF'}); retrying for up to "
                                      f"{self._stall_s:.0f}s (a kubelet restart is ridden out)")
                if self._closed.wait(min(self._backoff_base_s * 2 ** (failures - 1), BACKOFF_MAX_S)):
                    return
            else:
                failures = 0
                stalled_since = self._monotonic()
            self.reconnects += 1
            self.stream.restart()

    def _stopping(self) -> bool:
        return self._closed.is_set() or self._should_stop()

    def _read_once(self, *, follow: bool) -> Iterator[dict[str, Any]]:
        """One connection, read to EOF. Transport failures become _Broken:
        the caller decides from the pod's state whether to resume."""
        kwargs: dict[str, Any] = {}
        since = self._since_seconds()
        if since is not None:
            kwargs["since_seconds"] = since
        try:
            response = self._kube.core.read_namespaced_pod_log(
                self.pod, self.namespace, container=self.container, follow=follow, timestamps=True,
                _preload_content=False, _request_timeout=(self._connect_timeout_s, self._read_timeout_s),
                **kwargs)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Broken(f"cannot connect: {exc}") from exc
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status in (401, 403):
                raise errors.from_api_exception(exc, f"logs of pod {self.namespace}/{self.pod}") from exc
            # 404: pod gone (the state check says so); 400: container not started
            # yet or already removed; 5xx: kubelet unreachable. All: ask the pod.
            raise _Broken(f"log request failed: {errors.api_message(exc)}") from exc
        with self._lock:
            self._response = response
        if self._closed.is_set():  # close() ran before the response was published
            _shutdown(response)
        try:
            for chunk in response.stream(CHUNK_BYTES, decode_content=True):
                yield from self.stream.feed(chunk)
                if self.stream.ended or self._stopping():
                    return
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not self._closed.is_set():
                raise _Broken(f"read failed: {exc}") from exc
        finally:
            with self._lock:
                self._response = None
            _release(response)

    def _since_seconds(self) -> Optional[int]:
        """How far back a resumed read must reach: past the last line seen."""
        if self.stream.last_timestamp is None:
            return None
        seconds, _ = record_stream.timestamp_key(self.stream.last_timestamp)
        return max(1, math.ceil(self._clock() - seconds + self._resume_margin_s))

    def _container_state(self) -> str:
        """running, waiting, terminated or gone: what the pod says about the agent."""
        try:
            pod = get_pod(self._kube, self.namespace, self.pod)
        except errors.NotFoundError:
            return "gone"
        except errors.PermissionDeniedError:
            raise
        except errors.KubeError:
            return "unknown"  # the API is unreachable for now: retry with backoff
        # A pod being deleted (deletionTimestamp) still counts as running: its
        # agent got SIGTERM and is writing its summary and end record.
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if status.get("name") == self.container:
                state = status.get("state") or {}
                for key in ("terminated", "running", "waiting"):
                    if state.get(key) is not None:
                        return key
        phase = pod.get("status", {}).get("phase")
        return "terminated" if phase in ("Succeeded", "Failed") else "waiting"


class _Broken(Exception):
    """A connection that ended without an end record (EOF, timeout, reset)."""


def get_pod(kube: client.Kube, namespace: str, name: str) -> dict[str, Any]:
    """The pod as plain JSON (not a model object): the fields we read are few
    and this keeps callers independent of the client's model classes."""
    try:
        response = kube.core.read_namespaced_pod(name, namespace, _preload_content=False,
                                                 **kube.call_options())
        try:
            document = json.loads(response.data)
        finally:
            _release(response)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise errors.KubeError(f"pod {namespace}/{name}: cannot reach the API server: {exc}") from exc
    except ValueError as exc:
        raise errors.KubeError(f"pod {namespace}/{name}: unreadable answer: {exc}") from exc
    except Exception as exc:
        if getattr(exc, "status", None) is not None:
            raise errors.from_api_exception(exc, f"pod {namespace}/{name}",
                                            not_found=f"pod {namespace}/{name} not found") from exc
        raise
    if not isinstance(document, dict):
        raise errors.KubeError(f"pod {namespace}/{name}: unexpected answer")
    return document


def tail_lines(kube: client.Kube, namespace: str, pod: str, container: str = AGENT_CONTAINER,
               *, lines: int = 20) -> list[str]:
    """The last lines of a (usually dead) container's log, for an error
    message. Best effort: an empty list when the log cannot be read, since
    the caller is already reporting a failure."""
    try:
        response = kube.core.read_namespaced_pod_log(
            pod, namespace, container=container, tail_lines=lines, _preload_content=False,
            _request_timeout=(kube.connect_timeout_s(), READ_TIMEOUT_S))
        try:
            data: bytes = response.data
        finally:
            _release(response)
    except Exception:  # any failure: there is simply no tail to show
        return []
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]


def _release(response: Any) -> None:
    """Return the connection to the pool, or drop it if it is mid-stream."""
    for method in ("close", "release_conn"):
        with contextlib.suppress(Exception):  # already closed or broken: nothing to release
            getattr(response, method)()


def _shutdown(response: Any) -> None:
    """Wake a read blocked on this response's socket (see LogFollower.close)."""
    if response is None:
        return
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def follow(kube: client.Kube, namespace: str, pod: str, container: str = AGENT_CONTAINER, *,
           stream: record_stream.RecordStream, read_timeout_s: float = READ_TIMEOUT_S,
           should_stop: Callable[[], bool] = _never) -> Iterator[dict[str, Any]]:
    """LogFollower(...).records() for callers that never need close()."""
    yield from LogFollower(kube, namespace, pod, container, stream=stream, read_timeout_s=read_timeout_s,
                           should_stop=should_stop).records()

