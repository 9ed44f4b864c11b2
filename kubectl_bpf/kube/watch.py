"""From "Job created" to "agent running", or the real reason it never will be.

A Job is accepted even when nothing will ever run: admission refuses its pod
(an event on the Job), the kubelet rejects the pod (phase Failed with a
reason), the image is missing (a waiting reason on the container), a mount
fails (only an event), the agent dies at once (a terminated state). Each
shows up in a different place, so this module list-watches both the Job's
pods and the namespace's events, and after every change asks classify(),
a pure function over plain dicts, whether the start has failed. Watches, not
sleeps: a failure is reported as soon as the API server knows it.

classify() is pure so that every reason can be tested with fixture dicts
modelled on what kubelet and the controllers really write; the watching
loop only feeds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import queue
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from kubectl_bpf.kube import client, errors, logs
from kubectl_bpf.protocol import codec, exitcodes, records
from kubectl_bpf.protocol import stream as record_stream

AGENT_CONTAINER = logs.AGENT_CONTAINER

# The label the Job controller puts on its pods. batch.kubernetes.io/job-name
# exists only since 1.27; this one is on every version.
JOB_NAME_LABEL = "job-name"

# Server-side length of one watch request. Shorter than typical proxy idle
# timeouts, so a silently dead connection is replaced within this bound.
WATCH_WINDOW_S = 60

# Reason names, as kubelet and the controllers spell them.
AGENT_EXITED = "AgentExited"  # ours: the container ran and exited non-zero
FAILED_CREATE = "FailedCreate"
DEADLINE_EXCEEDED = "DeadlineExceeded"
UNSCHEDULABLE = "Unschedulable"
OOM_KILLED = "OOMKilled"
IMAGE_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                           "ImageInspectError", "RegistryUnavailable", "SignatureValidationFailed"})
CONTAINER_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                               "PreStartHookError", "PostStartHookError"})
# An image pull that failed on these may work on kubelet's next try: say so, keep waiting.
TRANSIENT_PULL_MARKERS = ("i/o timeout", "TLS handshake timeout", "Too Many Requests", "toomanyrequests",
                          "connection reset by peer", "context deadline exceeded", "503 Service Unavailable")
# Pod events that explain a pod stuck in ContainerCreating (kubelet retries them).
FATAL_POD_EVENTS = frozenset({"FailedMount", "FailedAttachVolume", "FailedScheduling"})
RETRIED_POD_EVENTS = frozenset({"FailedCreatePodSandBox", "FailedSync", "NetworkNotReady"})

# Our exit codes that an agent may legitimately exit with (protocol/exitcodes.py).
AGENT_EXIT_CODES = frozenset({exitcodes.FAILURE, exitcodes.USAGE, exitcodes.NOT_FOUND,
                              exitcodes.PERMISSION, exitcodes.UNSUPPORTED, exitcodes.TIMEOUT,
                              exitcodes.TARGET_STATE})
# The Job controller's pod names: generateName "<job>-", the base cut to 58
# characters. Matching on a shorter prefix keeps every event of our pods.
POD_PREFIX_CHARS = 50
MESSAGE_MAX_CHARS = 400  # of the API's message: a few terminal lines; the fix comes on top


@dataclasses.dataclass(frozen=True)
class StartFailure:
    """Why a tracer pod did not start: a Kubernetes reason, a one-line
    message with the fix where there is one, and our exit code."""

    reason: str
    message: str
    exit_code: int = exitcodes.FAILURE
    fatal: bool = True  # False: kubelet retries; worth saying, not worth giving up for
    explained: bool = True  # False: an early exit still missing the agent's last output

    def error(self) -> errors.KubeError:
        """The exception the CLI turns into one line and this exit code."""
        error: errors.KubeError
        if self.exit_code == exitcodes.PERMISSION:
            error = errors.AdmissionError(self.message)
        else:
            error = errors.StartError(self.message)
        error.exit_code = self.exit_code
        return error


class StartAbortedError(errors.KubeError):
    """StartWatcher.close() was called while waiting (the user interrupted)."""

    exit_code = exitcodes.INTERRUPTED


# -- classification (pure) -----------------------------------------------------------------------


def classify(pod: Optional[Any], events: Sequence[Any], *, job: Optional[Any] = None,
             container: str = AGENT_CONTAINER) -> Optional[StartFailure]:
    """The reason this start failed or is stuck, or None while all is well.

    ``pod`` is the Job's pod (None before it exists), ``events`` those about
    the Job and its pod, ``job`` the Job itself when known. Dicts as the API
    sends them, or the client's model objects. A running container wins over
    every old event; a terminated one with exit code 0 is not a failure (the
    agent finished, the caller reads its log).
    """
    pod_dict = _plain(pod) if pod is not None else None
    event_dicts = sorted((_plain(event) for event in events), key=_event_time)
    job_failure = _job_failure(event_dicts, _plain(job) if job is not None else None,
                               pod_exists=pod_dict is not None)
    if pod_dict is None:
        return job_failure
    node = _get(pod_dict, "spec", "nodeName")
    where = f"tracer pod on node {node}" if node else "tracer pod"
    status = pod_dict.get("status") or {}
    if status.get("phase") == "Failed" and status.get("reason"):
        return _rejected(where, str(status["reason"]), str(status.get("message") or ""))
    container_status = _container_status(status, container)
    state = (container_status or {}).get("state") or {}
    if state.get("running"):
        return None
    if state.get("terminated"):
        return _terminated(where, state["terminated"], _memory_limit(pod_dict, container))
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in IMAGE_REASONS:
        image = (container_status or {}).get("image") or _spec_image(pod_dict, container)
        return _image_failure(where, image, str(waiting["reason"]), str(waiting.get("message") or ""))
    if waiting.get("reason") in CONTAINER_REASONS:
        return StartFailure(waiting["reason"], _line(
            f"{where} cannot create the agent container: {waiting['reason']}: {waiting.get('message', '')}"))
    if job_failure is not None:
        return job_failure
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == UNSCHEDULABLE:
            return StartFailure(UNSCHEDULABLE, _line(
                f"tracer pod cannot be scheduled: {condition.get('message', '')}"))
    return _pod_event_failure(where, pod_dict, event_dicts)


def _job_failure(events: list[dict[str, Any]], job: Optional[dict[str, Any]], *,
                 pod_exists: bool) -> Optional[StartFailure]:
    """Failures the Job reports. A FailedCreate is stale once a pod exists
    (the controller retried and succeeded); a passed deadline never is."""
    for event in events:
        if _get(event, "involvedObject", "kind") != "Job":
            continue
        reason, message = event.get("reason"), str(event.get("message") or "")
        if reason == FAILED_CREATE and not pod_exists:
            return _failed_create(_get(event, "involvedObject", "namespace") or "", message)
        if reason == DEADLINE_EXCEEDED:
            return _deadline(message)
    for condition in _get(job or {}, "status", "conditions") or []:
        if condition.get("type") in ("Failed", "FailureTarget") and condition.get("status") == "True":
            if condition.get("reason") == DEADLINE_EXCEEDED:
                return _deadline(str(condition.get("message") or ""))
            return StartFailure(str(condition.get("reason") or "JobFailed"), _line(
                f"tracer Job failed: {condition.get('reason')}: {condition.get('message', '')}"))
    return None


def _failed_create(namespace: str, message: str) -> StartFailure:
    """Admission refused the pod (the Job itself was accepted). PodSecurity,
    quota and webhooks are permission problems with a known fix."""
    text = message.removeprefix("Error creating: ")
    if "violates PodSecurity" in text:
        return StartFailure(FAILED_CREATE, _line(
            f"tracer pod refused by PodSecurity admission: {text}",
            f"; allow privileged pods in the job namespace: kubectl label namespace {namespace} "
            "pod-security.kubernetes.io/enforce=privileged --overwrite (or 'kubectl bpf setup --apply')"),
            exitcodes.PERMISSION)
    if "exceeded quota" in text:
        return StartFailure(FAILED_CREATE, _line(
            f"tracer pod refused by a ResourceQuota in namespace {namespace}: {text}"), exitcodes.PERMISSION)
    if "is forbidden" in text or "denied the request" in text:
        return StartFailure(FAILED_CREATE, _line(f"tracer pod refused by admission: {text}"),
                            exitcodes.PERMISSION)
    return StartFailure(FAILED_CREATE, _line(f"the Job controller cannot create the tracer pod: {text}"))


def _deadline(message: str) -> StartFailure:
    return StartFailure(DEADLINE_EXCEEDED, _line(
        f"tracer Job reached its activeDeadlineSeconds before the agent started: {message}"),
        exitcodes.TIMEOUT)


def _rejected(where: str, reason: str, message: str) -> StartFailure:
    """Phase Failed with a reason: kubelet admission (OutOfcpu, NodeAffinity...)
    or eviction. The pod will never run; it is not retried (backoffLimit 0)."""
    message = message.removeprefix("Pod was rejected: ")
    if reason == DEADLINE_EXCEEDED:  # the pod's own activeDeadlineSeconds
        return _deadline(message)
    if reason.startswith("OutOf"):
        fix = "; the node has no room for the tracer pod's requests: free some, or trace on another node"
    elif reason == "NodeAffinity":
        fix = "; the node's labels do not match the tracer pod (a Windows node, or relabelled?)"
    elif reason == "Evicted":
        fix = "; the node is under resource pressure"
    else:
        fix = ""
    verb = "was evicted" if reason == "Evicted" else "was rejected by the node"
    return StartFailure(reason, _line(f"{where} {verb}: {reason}: {message}", fix))


def _terminated(where: str, terminated: Mapping[str, Any],
                memory_limit: Optional[str]) -> Optional[StartFailure]:
    code = terminated.get("exitCode")
    reason = str(terminated.get("reason") or "")
    message = str(terminated.get("message") or "")
    if code == 0 and reason != OOM_KILLED:
        return None  # it finished (a short --duration): the log has everything
    if reason == OOM_KILLED:
        limit = f" of {memory_limit}" if memory_limit else ""
        return StartFailure(OOM_KILLED, _line(
            f"{where}: the agent was OOMKilled (exit code {code}): it needs more than its memory "
            f"limit{limit}"))
    if reason in ("StartError", "ContainerCannotRun"):
        return StartFailure(reason, _line(f"{where} cannot start the agent: {reason}: {message}"))
    exit_code = code if code in AGENT_EXIT_CODES else exitcodes.FAILURE
    failure = StartFailure(AGENT_EXITED, _line(f"agent in {where} exited with code {code}"),
                           int(exit_code), explained=False)
    # FallbackToLogsOnError puts the last log lines in the message: the
    # agent's own error record is the best explanation there is.
    return explain_exit(failure, message.splitlines())


def explain_exit(failure: StartFailure, lines: Sequence[str]) -> StartFailure:
    """An early exit, told with the agent's last output (the termination
    message, or lines from logs.tail_lines()): the agent's own ``error``
    record if there is one (its message and exit code), else the last lines
    that were not records (a traceback's tail). Other failures, and exits
    already explained, are returned as they are."""
    if failure.explained or not lines:
        return failure
    parsed = record_stream.RecordStream()
    try:
        decoded = parsed.feed(("\n".join(lines) + "\n").encode())
    except codec.ProtocolError as exc:  # an agent of another version: that is the explanation
        return dataclasses.replace(failure, message=_line(f"{failure.message}: {exc}"), explained=True)
    agent_errors = [record for record in decoded if record.get("type") == records.ERROR]
    if agent_errors:
        error = agent_errors[-1]
        code = error.get("exit_code")
        exit_code = code if isinstance(code, int) and code in AGENT_EXIT_CODES else failure.exit_code
        return dataclasses.replace(failure, message=_line(f"{failure.message}: {error.get('message', '')}"),
                                   exit_code=exit_code, explained=True)
    if parsed.noise:
        return dataclasses.replace(failure, explained=True, message=_line(
            f"{failure.message}; last output: " + " | ".join(list(parsed.noise)[-5:])))
    return failure


def _image_failure(where: str, image: str, reason: str, message: str) -> StartFailure:
    transient = reason in ("ErrImagePull", "ImagePullBackOff") and any(
        marker in message for marker in TRANSIENT_PULL_MARKERS)
    fix = "build/import the image or pass --image"
    if any(word in message for word in ("unauthorized", "authentication required", "denied")):
        fix = "pass --image-pull-secret for a private registry, or --image"
    text = f"{where} cannot pull image \"{image}\": {reason}: {message}"
    if transient:
        return StartFailure(reason, _line(text, " (kubelet retries)"), fatal=False)
    return StartFailure(reason, _line(text, f"; {fix}"))


def _pod_event_failure(where: str, pod: dict[str, Any],
                       events: list[dict[str, Any]]) -> Optional[StartFailure]:
    """Failures visible only as events on the pod (the status still says
    ContainerCreating). The latest event decides."""
    name = _get(pod, "metadata", "name")
    found: Optional[StartFailure] = None
    for event in events:
        if _get(event, "involvedObject", "kind") != "Pod" or _get(event, "involvedObject", "name") != name:
            continue
        if event.get("type") != "Warning":
            continue
        reason, message = str(event.get("reason") or ""), str(event.get("message") or "")
        if reason == "FailedScheduling":
            found = StartFailure(UNSCHEDULABLE, _line(f"tracer pod cannot be scheduled: {message}"))
        elif reason in FATAL_POD_EVENTS:
            found = StartFailure(reason, _line(f"{where} cannot mount a volume: {reason}: {message}"))
        elif reason in RETRIED_POD_EVENTS:
            found = StartFailure(reason, _line(f"{where}: {reason}: {message}", " (kubelet retries)"),
                                 fatal=False)
        elif reason == "Evicted":
            found = StartFailure(reason, _line(f"{where} was evicted: {message}"))
    return found


# -- helpers on plain API dicts ------------------------------------------------------------------

_SERIALIZER: Optional[k8s.ApiClient] = None


def _plain(obj: Any) -> dict[str, Any]:
    """A model object as the API's JSON (camelCase keys); dicts pass through."""
    global _SERIALIZER  # one serializer, built on first use (it builds a connection pool)
    if isinstance(obj, Mapping):
        return dict(obj)
    if _SERIALIZER is None:
        _SERIALIZER = k8s.ApiClient()
    plain = _SERIALIZER.sanitize_for_serialization(obj)
    return plain if isinstance(plain, dict) else {}


def _get(document: Mapping[str, Any], *path: str) -> Any:
    value: Any = document
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _event_time(event: Mapping[str, Any]) -> str:
    """Events in the order they last happened (RFC3339 strings sort as times
    when they share a format, which the API guarantees for these fields)."""
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
               or _get(event, "metadata", "creationTimestamp") or "")


def _container_status(status: Mapping[str, Any], container: str) -> Optional[dict[str, Any]]:
    statuses = status.get("containerStatuses") or []
    for entry in statuses:
        if entry.get("name") == container:
            return dict(entry)
    return None


def _memory_limit(pod: Mapping[str, Any], container: str) -> Optional[str]:
    for entry in _get(pod, "spec", "containers") or []:
        if entry.get("name") == container:
            limit = _get(entry, "resources", "limits", "memory")
            return str(limit) if limit else None
    return None


def _spec_image(pod: Mapping[str, Any], container: str) -> str:
    for entry in _get(pod, "spec", "containers") or []:
        if entry.get("name") == container:
            return str(entry.get("image", "?"))
    return "?"


def _line(text: str, fix: str = "") -> str:
    """One line: API messages carry newlines and can be long, so the
    message is flattened and cut, but never the fix that follows it."""
    flat = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    if len(flat) > MESSAGE_MAX_CHARS:
        flat = flat[:MESSAGE_MAX_CHARS - 3] + "..."
    return flat + fix


# -- watching -------------------------------------------------------------------------------------


class _ListWatch:
    """List, then watch from the list's resourceVersion, re-listing when the
    version expires: the informer pattern without a cache. Runs in a daemon
    thread and posts (source, type, object) to a queue; type SYNC carries a
    full list that replaces what the reader knew."""

    def __init__(self, source: str, list_func: Callable[..., Any], namespace: str,
                 kwargs: dict[str, Any], sink: queue.Queue[tuple[str, str, Any]], *,
                 connect_timeout_s: float) -> None:
        self.source = source
        self._connect_timeout_s = connect_timeout_s
        self._list_func = list_func
        self._namespace = namespace
        self._kwargs = kwargs
        self._sink = sink
        self._stopped = threading.Event()
        self._watch = k8s_watch.Watch()
        self._thread = threading.Thread(target=self._run, name=f"watch-{source}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # shuts the socket down: a blocked read returns at once

    def join(self, timeout_s: float) -> None:
        """Wait for the thread, shutting the socket down again and again: a
        stop() that came while a request was being sent found no socket to
        shut, and the watch that follows would otherwise block for a window."""
        deadline = time.monotonic() + timeout_s
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._watch.stop()
            self._thread.join(0.02)

    def _run(self) -> None:
        version: Optional[str] = None
        failures = 0
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._list()
                if self._stopped.is_set():
                    return
                version = self._watch_from(version)
                failures = 0
            except Exception as exc:  # transport or API failure: post it, retry with backoff
                status = getattr(exc, "status", None)
                if status == 410:  # the version expired: list again
                    version = None
                    continue
                if self._stopped.is_set():
                    return
                failures += 1
                fatal = status in (401, 403)
                self._sink.put((self.source, "FATAL" if fatal else "TRANSIENT", exc))
                if fatal or self._stopped.wait(min(0.5 * 2 ** failures, 5.0)):
                    return

    def _list(self) -> str:
        response = self._list_func(self._namespace, _preload_content=False,
                                   _request_timeout=(self._connect_timeout_s, WATCH_WINDOW_S), **self._kwargs)
        try:
            document = json.loads(response.data)
        finally:
            response.release_conn()
        self._sink.put((self.source, "SYNC", document.get("items") or []))
        return str(_get(document, "metadata", "resourceVersion") or "")

    def _watch_from(self, version: str) -> str:
        for event in self._watch.stream(self._list_func, self._namespace, resource_version=version,
                                        timeout_seconds=WATCH_WINDOW_S, allow_watch_bookmarks=True,
                                        _request_timeout=(self._connect_timeout_s, WATCH_WINDOW_S + 15),
                                        **self._kwargs):
            if self._stopped.is_set():
                break
            obj = event.get("raw_object") or {}
            version = str(_get(obj, "metadata", "resourceVersion") or version)
            if event.get("type") != "BOOKMARK":
                self._sink.put((self.source, str(event.get("type")), obj))
        return version


class StartWatcher:
    """Waits for one Job's agent container to run, reporting progress and
    failing fast. wait() in one thread, close() from any other."""

    def __init__(self, kube: client.Kube, namespace: str, job_name: str, *, timeout_s: float,
                 on_progress: Callable[[str], None], container: str = AGENT_CONTAINER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self.namespace = namespace
        self.job_name = job_name
        self._timeout_s = timeout_s
        self._on_progress = on_progress
        self._container = container
        self._clock = clock
        self._queue: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self._closed = threading.Event()
        self.phase = "waiting for the Job controller to create the tracer pod"
        self._reported: set[str] = set()
        self._pods: dict[str, dict[str, Any]] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._gone: Optional[dict[str, Any]] = None  # the last state of a deleted pod
        self._api_trouble: Optional[str] = None
        self._job_uid: Optional[str] = None

    def close(self) -> None:
        """Make wait() raise StartAbortedError now."""
        self._closed.set()
        self._queue.put(("closed", "", None))

    def wait(self) -> str:
        """The pod's name once the agent container runs (or has already
        finished with exit code 0). Raises StartError/AdmissionError with the
        reason, StartTimeoutError naming the last phase seen."""
        # The Job's uid tells its pods and events from those of an earlier Job
        # of the same name (events outlive their objects by an hour).
        try:
            self._job_uid = _get(_get_job(self._kube, self.namespace, self.job_name), "metadata", "uid")
        except errors.NotFoundError as exc:
            raise errors.StartError(f"tracer Job {self.namespace}/{self.job_name} not found") from exc
        connect_s = self._kube.connect_timeout_s()
        watches = [
            _ListWatch("pod", self._kube.core.list_namespaced_pod, self.namespace,
                       {"label_selector": f"{JOB_NAME_LABEL}={self.job_name}"}, self._queue,
                       connect_timeout_s=connect_s),
            # All events of the job namespace, filtered here: a field selector
            # takes one involvedObject.name, and the pod's is not known yet.
            # The namespace holds only tracer Jobs, so the volume is small.
            _ListWatch("event", self._kube.core.list_namespaced_event, self.namespace, {}, self._queue,
                       connect_timeout_s=connect_s),
        ]
        for watch in watches:
            watch.start()
        try:
            return self._loop()
        finally:
            for watch in watches:
                watch.stop()
            for watch in watches:
                watch.join(1.0)

    def _loop(self) -> str:
        deadline = self._clock() + self._timeout_s
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._timeout()
            try:
                message = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            batch = [message]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            for source, kind, payload in batch:
                self._apply(source, kind, payload)
            result = self._evaluate()
            if result is not None:
                return result

    def _apply(self, source: str, kind: str, payload: Any) -> None:
        if source == "closed" or self._closed.is_set():
            raise StartAbortedError(f"interrupted while waiting for tracer Job {self.job_name}")
        if kind == "FATAL":
            raise errors.from_api_exception(payload, f"watching {source}s in namespace {self.namespace}")
        if kind == "TRANSIENT":
            self._api_trouble = f"watching {source}s: {errors.api_message(payload)}"
            return
        self._api_trouble = None
        if source == "pod":
            if kind == "SYNC":
                self._pods = {_get(pod, "metadata", "name"): pod for pod in payload if self._is_our_pod(pod)}
            elif not self._is_our_pod(payload):
                return
            elif kind == "DELETED":
                self._pods.pop(_get(payload, "metadata", "name"), None)
                self._gone = payload
            else:
                self._pods[_get(payload, "metadata", "name")] = payload
        elif source == "event":
            items = payload if kind == "SYNC" else [payload]
            if kind == "SYNC":
                self._events = {}
            for event in items:
                if self._is_ours(event) and kind != "DELETED":
                    self._events[str(_get(event, "metadata", "uid"))] = event

    def _is_ours(self, event: Mapping[str, Any]) -> bool:
        """Events about the Job, or about a pod that may be its pod. Pod names
        are the Job's name (truncated when long) plus a random suffix; the
        exact pod is matched later (_concerns), once it is known."""
        kind, name = _get(event, "involvedObject", "kind"), str(_get(event, "involvedObject", "name") or "")
        if kind == "Job":
            return name == self.job_name and _get(event, "involvedObject", "uid") in (None, self._job_uid)
        return kind == "Pod" and name.startswith(self.job_name[:POD_PREFIX_CHARS])

    def _is_our_pod(self, pod: Mapping[str, Any]) -> bool:
        owners = [owner.get("uid") for owner in _get(pod, "metadata", "ownerReferences") or []]
        return not owners or self._job_uid in owners

    def _evaluate(self) -> Optional[str]:
        pod = self._current_pod()
        events = [event for event in self._events.values() if self._concerns(event, pod)]
        self._report_progress(pod, events)
        failure = classify(pod, events, container=self._container)
        if failure is not None and failure.fatal:
            raise self._explained(failure, pod).error()
        if failure is not None:
            self._progress(f"warning: {failure.message}")
        if pod is None:
            if self._gone is not None:
                raise self._vanished(self._gone)
            return None
        state = (_container_status(pod.get("status") or {}, self._container) or {}).get("state") or {}
        name = str(_get(pod, "metadata", "name"))
        if state.get("running"):
            self._progress("container started: loading BPF")
            return name
        if state.get("terminated"):
            return name  # exit code 0 (classify raised otherwise): the log has the rest
        if _get(pod, "metadata", "deletionTimestamp"):
            raise self._vanished(pod)
        return None

    def _current_pod(self) -> Optional[dict[str, Any]]:
        """The newest pod of the Job (backoffLimit 0 makes it the only one)."""
        if not self._pods:
            return None
        return max(self._pods.values(), key=lambda pod: str(_get(pod, "metadata", "creationTimestamp")))

    @staticmethod
    def _concerns(event: Mapping[str, Any], pod: Optional[Mapping[str, Any]]) -> bool:
        if _get(event, "involvedObject", "kind") == "Job":
            return True
        return pod is not None and _get(event, "involvedObject", "name") == _get(pod, "metadata", "name")

    def _report_progress(self, pod: Optional[Mapping[str, Any]], events: list[dict[str, Any]]) -> None:
        if pod is None:
            return
        node = _get(pod, "spec", "nodeName")
        if node:
            self._progress(f"scheduled on {node}")
        else:
            self._progress("pod created, waiting for the scheduler")
        for event in sorted(events, key=_event_time):
            if event.get("reason") == "Pulling":
                self._progress(_lower_first(str(event.get("message") or "pulling image")))
            elif event.get("reason") == "Pulled" and "already present" not in str(event.get("message")):
                self._progress(_lower_first(str(event.get("message") or "pulled image")))

    def _progress(self, text: str) -> None:
        self.phase = text
        if text not in self._reported:
            self._reported.add(text)
            self._on_progress(text)

    def _explained(self, failure: StartFailure, pod: Optional[Mapping[str, Any]]) -> StartFailure:
        """An early exit whose termination message said nothing useful gets
        the last log lines instead."""
        if failure.explained or pod is None:
            return failure
        lines = logs.tail_lines(self._kube, self.namespace, str(_get(pod, "metadata", "name")),
                                self._container)
        return explain_exit(failure, lines)

    def _vanished(self, pod: dict[str, Any]) -> errors.KubeError:
        """The pod is deleted, or being deleted, before its agent ran: the Job
        usually says why (a passed deadline sets its FailureTarget condition
        at once, while the pod may take long to go), else say what we saw."""
        name = _get(pod, "metadata", "name")
        try:
            job: Optional[dict[str, Any]] = _get_job(self._kube, self.namespace, self.job_name)
        except errors.NotFoundError:
            return errors.StartError(f"tracer Job {self.namespace}/{self.job_name} was deleted before its "
                                     "agent started (by 'kubectl bpf gc' or someone else?)")
        except errors.PermissionDeniedError:
            raise
        except errors.KubeError:
            job = None
        events = [event for event in self._events.values() if self._concerns(event, pod)]
        failure = classify(pod, events, job=job, container=self._container)
        if failure is not None and failure.fatal:
            return self._explained(failure, pod).error()
        return errors.StartError(f"tracer pod {self.namespace}/{name} was deleted before the agent started")

    def _timeout(self) -> errors.KubeError:
        text = (f"tracer pod of Job {self.namespace}/{self.job_name} did not start within "
                f"{self._timeout_s:g}s; last: {self.phase}")
        pod = self._current_pod()
        node = _get(pod or {}, "spec", "nodeName")
        if node and not _get(pod or {}, "status", "startTime"):
            text += f"; the kubelet on node {node} never picked the pod up: is the node Ready?"
        if self._api_trouble:
            text += f"; {self._api_trouble}"
        return errors.StartTimeoutError(_line(text))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _get_job(kube: client.Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        response = kube.batch.read_namespaced_job(name, namespace, _preload_content=False,
                                                  **kube.call_options())
        try:
            document = json.loads(response.data)
        finally:
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise errors.KubeError(f"job {namespace}/{name}: {exc}") from exc
    except Exception as exc:
        if getattr(exc, "status", None) is not None:
            raise errors.from_api_exception(exc, f"job {namespace}/{name}") from exc
        raise
    return document if isinstance(document, dict) else {}


def diagnose(kube: client.Kube, namespace: str, pod: str,
             container: str = AGENT_CONTAINER) -> Optional[StartFailure]:
    """Why an agent's stream stopped without an ``end`` record, from the
    pod's state (OOMKilled, evicted, crashed with an exit code and its last
    output), or None when the pod says nothing useful (still running, gone).
    For the caller of logs.LogFollower once RecordStream.finish() says the
    stream was truncated."""
    try:
        document = logs.get_pod(kube, namespace, pod)
    except errors.NotFoundError:
        return None
    failure = classify(document, [], container=container)
    if failure is None or failure.explained:
        return failure
    return explain_exit(failure, logs.tail_lines(kube, namespace, pod, container))


def wait_for_start(kube: client.Kube, namespace: str, job_name: str, *, timeout_s: float,
                   on_progress: Callable[[str], None]) -> str:
    """StartWatcher(...).wait() for callers that never abort the wait."""
    return StartWatcher(kube, namespace, job_name, timeout_s=timeout_s, on_progress=on_progress).wait()
