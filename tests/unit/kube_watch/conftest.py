"""A fake API server for StartWatcher: list calls return scripted lists, and
watch calls return a stream the test feeds event by event, read by the real
kubernetes.watch.Watch, so resource versions, ERROR events and stop() take
the library's own paths."""

from __future__ import annotations

import json
import queue
import threading
import types
from typing import Any, Optional

import pytest
from kubernetes.client import exceptions as k8s_exceptions

JOB = "kubectl-bpf-drops-k3x9q"
JOB_UID = "c06768bd-fe4d-41b6-95b3-daeaa4327cef"
END_WATCH = object()  # ends one watch request, as the server does at timeout_seconds


class ListResponse:
    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document).encode()

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


class WatchResponse:
    """A watch body: one JSON event per line, as long as the feed gives them."""

    status = 200

    def __init__(self, feed: queue.Queue[Any]) -> None:
        self._feed = feed
        self.shut = threading.Event()
        sock = types.SimpleNamespace(shutdown=lambda how: self.shut.set())
        self.connection = types.SimpleNamespace(sock=sock)

    def stream(self, amt: Optional[int] = None, decode_content: bool = False) -> Any:
        while not self.shut.is_set():
            try:
                item = self._feed.get(timeout=0.02)
            except queue.Empty:
                continue
            if item is END_WATCH:
                return
            yield (json.dumps(item) + "\n").encode()

    def close(self) -> None:
        self.shut.set()

    def release_conn(self) -> None:
        pass


class Resource:
    """One kind of object: scripted lists, a feed for its watches, the calls seen."""

    def __init__(self) -> None:
        self.lists: list[list[dict[str, Any]]] = [[]]
        self.feed: queue.Queue[Any] = queue.Queue()
        self.calls: list[dict[str, Any]] = []
        self.error: Optional[Exception] = None
        self.responses: list[WatchResponse] = []

    def __call__(self, namespace: str, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        if kwargs.get("watch"):
            response = WatchResponse(self.feed)
            self.responses.append(response)
            return response
        items = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        return ListResponse({"metadata": {"resourceVersion": "100"}, "items": items})

    @property
    def list_calls(self) -> int:
        return sum(1 for call in self.calls if not call.get("watch"))

    def push(self, kind: str, obj: Any) -> None:
        self.feed.put({"type": kind, "object": obj})


class FakeCluster:
    def __init__(self) -> None:
        self.pods = Resource()
        self.events = Resource()
        self.job: Optional[dict[str, Any]] = {"metadata": {"name": JOB, "uid": JOB_UID}, "status": {}}
        self.log_tail = b""
        self.job_reads = 0
        self.core = types.SimpleNamespace(list_namespaced_pod=self._list_pods,
                                          list_namespaced_event=self._list_events,
                                          read_namespaced_pod_log=self._read_log)
        self.batch = types.SimpleNamespace(read_namespaced_job=self._read_job)
        self.kube = types.SimpleNamespace(core=self.core, batch=self.batch, call_options=lambda: {},
                                          connect_timeout_s=lambda: 10.0)

    # Named functions (not the Resource objects) so Watch finds a plain callable.
    def _list_pods(self, namespace: str, **kwargs: Any) -> Any:
        return self.pods(namespace, **kwargs)

    def _list_events(self, namespace: str, **kwargs: Any) -> Any:
        return self.events(namespace, **kwargs)

    def _read_job(self, name: str, namespace: str, **kwargs: Any) -> ListResponse:
        self.job_reads += 1
        if self.job is None:  # the Job is gone
            raise k8s_exceptions.ApiException(status=404, reason="Not Found")
        return ListResponse(self.job)

    def _read_log(self, name: str, namespace: str, **kwargs: Any) -> ListResponse:
        response = ListResponse({})
        response.data = self.log_tail
        return response


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()
