"""One tracing session on a cluster: from resolved node groups to a merged
stream of agent records, and nothing privileged left behind.

The order is the safety argument. Everything that can refuse us (RBAC, the
server-side dry run of every tracer pod) runs before the first object is
created; once a Job exists, ``close()`` deletes it on every path, and the
caller guarantees ``close()`` runs (``with Session(...)``). If this process
dies instead, three things bound the damage without it: the agent stops by
itself when the lease this session renews stops moving (agent/lease.py), the
Job's ``activeDeadlineSeconds`` kills the pod, and its TTL deletes the Job.

A graceful stop is a Job deletion: the pod is terminated with SIGTERM, the
agent detaches and writes its summary and ``end``, and the log stream still
delivers them while the pod terminates.
"""

from __future__ import annotations

import dataclasses
import datetime
import queue
import socket
import threading
import time
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence, Union

import urllib3
from kubernetes.client import rest as k8s_rest

from kubectl_bpf.kube import client, errors, jobs, labels, logs, settings, targets, watch
from kubectl_bpf.protocol import codec, exitcodes, records, spec, stream

LEASE_RENEW_S = 10.0  # several renewals fit in the agent's lease TTL, even if one call fails
# A log that stays unreadable is waited for up to the agent's lease TTL plus this:
# the agent stops by itself at the TTL, and its summary then waits in the log.
STALL_MARGIN_S = 30.0
STOP_GRACE_S = 20.0  # how long a graceful stop waits for every node's summary and end
# Deleting the Jobs when the API server does not answer: retried this long (a
# restarting server is back within seconds; longer, the lease stops the agents
# anyway), backing off from 1 s to 8 s.
CLEANUP_RETRY_S = 30.0
CLEANUP_BACKOFF_S = 1.0
CLEANUP_BACKOFF_MAX_S = 8.0
UNREACHABLE_PREFIX = "API server unreachable: "
# Records waiting for the renderer (~2.4 KB each): a client slower than the agents
# used to grow without bound (1 GB in a 100k/s flood). Bounded, the backlog stays in
# the kubelet's log file instead; if it rotates past us the seq gaps are reported.
QUEUED_RECORDS = 10_000
BACKPRESSURE_SLEEP_S = 0.01  # the renderer drains a few hundred records meanwhile


class CleanupError(errors.KubeError):
    """Tracer Jobs this session could not delete; the message names them."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        if unreachable:
            self.exit_code = exitcodes.UNREACHABLE


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    """One agent record from one node."""

    node: str
    record: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class NodeFinished:
    """A node's stream is over: ``error`` is None when its ``end`` arrived and
    the run ended as asked; ``ended`` says whether the ``end`` record came
    (a renderer of JSON lines adds ``error`` and ``end`` records when not)."""

    node: str
    error: Optional[str]
    exit_code: int
    ended: bool = False


# What the agent's summary says when someone else deleted the Job or the pod:
# stopped_by names the deletion, the signal the agent saw moves to "signal".
STOPPED_BY = {"job": "job-deleted", "pod": "pod-deleted"}


Item = Union[NodeRecord, NodeFinished]


class RecordSource(Protocol):
    """Where one node's records come from: its agent's followed pod log
    (logs.LogFollower) on a cluster; recorded logs in the fan-out bench and
    the merge tests, which replay many nodes through this same merge."""

    def records(self) -> Iterator[dict[str, Any]]:
        """New records, decoded by the RecordStream the source was built with."""
        ...

    def close(self) -> None:
        """Stop reading (close() of the session): records() ends soon after."""
        ...


@dataclasses.dataclass
class NodeRun:
    group: targets.NodeGroup
    job: dict[str, Any]
    pod: Optional[str] = None
    follower: Optional[RecordSource] = None
    start_error: Optional[errors.KubeError] = None  # its agent never started: reported, not followed

    @property
    def job_name(self) -> str:
        return str(self.job["metadata"]["name"])


class Session:
    def __init__(self, kube: client.Kube, *, gadget: str, run_spec: spec.RunSpec,
                 groups: Sequence[targets.NodeGroup], options: settings.SessionOptions, command: str,
                 on_progress: Callable[[str], None],
                 spec_for: Optional[Callable[[targets.NodeGroup], spec.RunSpec]] = None,
                 source_for: Optional[Callable[[NodeRun, stream.RecordStream], RecordSource]] = None) -> None:
        """``spec_for`` builds each node's spec (a gadget whose work differs per
        node, e.g. the probes whose sources run there); by default every node
        gets ``run_spec`` with that node's targets. ``source_for`` opens a
        node's record source once its agent runs; by default its pod log."""
        self._kube = kube
        self._source_for = source_for or self._pod_log
        self._options = options
        self._on_progress = on_progress
        self.run_id = labels.new_run_id()
        self._heartbeat_s = run_spec.stats_interval_s
        self._spec_for = spec_for or (lambda group: dataclasses.replace(
            run_spec, target=targets.target_spec(group)))
        self._runs = [NodeRun(group=group, job=jobs.build_job(self._job_request(
            gadget, run_spec, group, command))) for group in groups]
        self._items: queue.Queue[Item] = queue.Queue()
        self._closing = threading.Event()
        self._created: list[str] = []
        self._deleted: set[str] = set()  # by close(): a second close() does not delete again
        self._watchers: list[watch.StartWatcher] = []
        self._stopping = False

    def _job_request(self, gadget: str, run_spec: spec.RunSpec, group: targets.NodeGroup,
                     command: str) -> jobs.JobRequest:
        options = self._options
        node_spec = dataclasses.replace(self._spec_for(group), lease_ttl_s=options.lease_ttl_s)
        return jobs.JobRequest(
            # The node's own gadget names its Job: one session may run two gadgets on a node.
            gadget=node_spec.gadget or gadget, run_id=self.run_id, node=group.node, run_spec=node_spec,
            image=options.image,
            job_namespace=options.job_namespace, privileged=options.privileged,
            duration_s=run_spec.duration_s, max_duration_s=options.max_duration_s, ttl_s=options.ttl_s,
            targets=targets.describe(group), user=self._kube.user, host=socket.gethostname(), command=command,
            image_pull_secrets=options.image_pull_secrets)

    @property
    def _read_timeout_s(self) -> float:
        """Twice the agent's heartbeat period: a silent stream is then broken, not idle."""
        return max(logs.READ_TIMEOUT_S, 2 * self._heartbeat_s)

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return [run.job for run in self._runs]

    @property
    def nodes(self) -> list[str]:
        return [run.group.node for run in self._runs]

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Check, create, wait until every agent runs, then stream. Raises a
        KubeError with the real reason; whatever was created is the caller's
        to remove with close()."""
        jobs.check_access(self._kube, self._options.job_namespace, target_namespaces=sorted(
            {pod.namespace for run in self._runs for pod in run.group.pods}))
        for run in self._runs:
            jobs.dry_run_pod(self._kube, run.job)
        for run in self._runs:
            jobs.create_job(self._kube, run.job)
            self._created.append(run.job_name)
            self._on_progress(f"{run.group.node}: job {self._options.job_namespace}/{run.job_name} created")
        self._wait_for_pods()
        self.start_streams()

    def start_streams(self) -> None:
        """Follow every started node's records into items(), and renew the
        leases; a node whose agent never started gets its NodeFinished now.
        start() calls it; replays of recorded logs call it alone."""
        for run in self._runs:
            if run.start_error is not None:
                self._discard(run)
                self._put(NodeFinished(run.group.node, str(run.start_error), run.start_error.exit_code))
            else:
                self._spawn(self._follow, run)
        self._spawn(self._renew_leases)

    def _discard(self, run: NodeRun) -> None:
        """A node that failed to start keeps no Job (nor its pending pod) while the
        others stream; if the API refuses now, close() retries with the others."""
        if run.job_name not in self._created:
            return
        try:
            jobs.delete_job(self._kube, self._options.job_namespace, run.job_name, grace_period_s=0)
        except (errors.KubeError, urllib3.exceptions.HTTPError, OSError):
            return
        self._deleted.add(run.job_name)

    def _wait_for_pods(self) -> None:
        """Wait for every node's agent. One node failing (its image missing,
        the node NotReady, its Job deleted) is that node's failure: the others
        still start and stream, and it is reported at once and in items().
        Only when no agent started at all is the first failure raised."""
        failures: list[errors.KubeError] = []
        self._watchers = [watch.StartWatcher(
            self._kube, self._options.job_namespace, run.job_name, timeout_s=self._options.start_timeout_s,
            on_progress=self._progress_of(run.group.node)) for run in self._runs]

        def wait(run: NodeRun, watcher: watch.StartWatcher) -> None:
            try:
                run.pod = watcher.wait()
            except errors.KubeError as exc:
                run.start_error = exc
                failures.append(exc)
                if len(failures) == len(self._runs) or self._closing.is_set():
                    return
                self._on_progress(f"{run.group.node}: error: {exc} (the other nodes go on)")

        waiters = [threading.Thread(target=wait, args=pair, daemon=True)
                   for pair in zip(self._runs, self._watchers)]
        for waiter in waiters:
            waiter.start()
        for waiter in waiters:
            while waiter.is_alive():  # join in slices: Ctrl-C must reach the main thread
                waiter.join(0.2)
        if len(failures) == len(self._runs):
            raise failures[0]

    def _progress_of(self, node: str) -> Callable[[str], None]:
        return lambda text: self._on_progress(f"{node}: {text}")

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _pod_log(self, run: NodeRun, record_stream: stream.RecordStream) -> RecordSource:
        assert run.pod is not None
        return logs.LogFollower(self._kube, self._options.job_namespace, run.pod,
                                stream=record_stream, read_timeout_s=self._read_timeout_s,
                                connect_timeout_s=self._kube.connect_timeout_s(),
                                stall_s=max(logs.STALL_S, self._options.lease_ttl_s + STALL_MARGIN_S),
                                on_progress=self._progress_of(run.group.node))

    def _follow(self, run: NodeRun) -> None:
        node = run.group.node
        record_stream = stream.RecordStream()
        run.follower = self._source_for(run, record_stream)
        error: Optional[str] = None
        exit_code = exitcodes.OK
        outside: Optional[str] = None  # "job" or "pod": what someone else deleted
        try:
            for agent_record in run.follower.records():
                record = agent_record
                if record.get("type") == records.SUMMARY and self._signalled_by_others(record):
                    outside = self._deleted_part(run)
                    if outside is not None:
                        record = {**record, "stopped_by": STOPPED_BY[outside], "signal": record["stopped_by"]}
                elif record.get("type") == records.END and outside is not None:
                    record = {**record, "exit_code": exitcodes.STOPPED_OUTSIDE}
                self._put(NodeRecord(node, record))
        except logs.PodGoneError as exc:
            error, exit_code = str(exc), exc.exit_code
            if not self._stopping:
                outside = self._deleted_part(run) or "pod"
        except errors.KubeError as exc:
            error, exit_code = str(exc), exc.exit_code
        except codec.ProtocolError as exc:
            error, exit_code = str(exc), exitcodes.FAILURE
        result = record_stream.finish()
        if error is None and result.end is not None:
            exit_code = int(result.end.get("exit_code", exitcodes.OK))
        if outside is None and error is None and result.truncated and not self._closing.is_set() \
                and not self._stopping:
            outside = self._deleted_part(run)
        if outside is not None:
            error, exit_code = self._outside_message(run, outside, ended=result.end is not None), \
                exitcodes.STOPPED_OUTSIDE
        if error is None and result.truncated and not self._closing.is_set():
            failure = None if run.pod is None else watch.diagnose(self._kube, self._options.job_namespace,
                                                                  run.pod)
            error = failure.message if failure is not None else result.describe()
            exit_code = failure.exit_code if failure is not None else exitcodes.FAILURE
        if result.gaps:
            self._on_progress(f"{node}: warning: {result.missing} records never arrived ({result.gaps} gaps; "
                              "the kubelet rotated the log faster than it was read); the summary counts "
                              "are exact, the lines are not complete")
        self._put(NodeFinished(node, error, exit_code, ended=result.end is not None))

    def _deleted_part(self, run: NodeRun) -> Optional[str]:
        return jobs.deleted_part(self._kube, self._options.job_namespace, run.job_name, run.pod)

    def _signalled_by_others(self, summary: dict[str, Any]) -> bool:
        """The agent stopped on a signal (the pod's termination) this client
        did not ask for: someone deleted the Job or the pod."""
        return str(summary.get("stopped_by", "")).startswith("SIG") and not self._stopping

    def _outside_message(self, run: NodeRun, part: str, *, ended: bool) -> str:
        namespace = self._options.job_namespace
        if part == "job":
            what = (f"tracer job {namespace}/{run.job_name} was deleted by someone else "
                    "(kubectl delete job, or kubectl bpf gc --all from another shell)")
        else:
            what = (f"tracer pod {namespace}/{run.pod} was deleted by someone else "
                    "(kubectl delete pod, or a node drain)")
        return f"stopped from outside: {what}; " + (
            "the records up to the stop are complete" if ended else "the agent was killed before its summary")

    def _put(self, item: Item) -> None:
        """Waits while the renderer is QUEUED_RECORDS behind (the log stream then
        waits in TCP), but never past close(). Sleeping in slices rather than a
        bounded Queue: a full Queue hands over the GIL on every record, which
        cost the client 30% of its throughput."""
        while self._items.qsize() >= QUEUED_RECORDS and not self._closing.is_set():
            time.sleep(BACKPRESSURE_SLEEP_S)
        self._items.put(item)

    def _renew_leases(self) -> None:
        """The lease value is the renewal time: the agent only needs it to
        change, ``kubectl bpf list`` reads it to tell a session whose client
        is gone (LeaseExpired)."""
        while not self._closing.wait(LEASE_RENEW_S):
            renewed = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
            for run in self._runs:
                if run.pod is None:
                    continue
                try:
                    self._kube.core.patch_namespaced_pod(
                        run.pod, self._options.job_namespace,
                        {"metadata": {"annotations": {labels.LEASE_ANNOTATION: renewed}}},
                        **self._kube.call_options())
                except (k8s_rest.ApiException, urllib3.exceptions.HTTPError, OSError):
                    continue  # the next renewal retries; the agent's TTL spans several misses

    # -- stream --------------------------------------------------------------------------------

    def items(self, *, poll_s: float = 0.2) -> Iterator[Optional[Item]]:
        """Records as they arrive from every node, then one NodeFinished per
        node. Yields None every ``poll_s`` while idle so the caller can react
        to signals and deadlines without threads of its own."""
        remaining = len(self._runs)
        while remaining:
            try:
                item = self._items.get(timeout=poll_s)
            except queue.Empty:
                yield None
                continue
            if isinstance(item, NodeFinished):
                remaining -= 1
            yield item

    # -- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Graceful: SIGTERM every agent by deleting its Job; the final
        records still arrive through items()."""
        if self._stopping:
            return
        self._stopping = True
        for name in self._created:
            jobs.delete_job(self._kube, self._options.job_namespace, name, grace_period_s=None)

    def close(self, *, force: bool = False) -> None:
        """Delete everything this session created; safe to call twice. With
        ``force`` the pods are killed at once instead of terminated. An API
        server that does not answer is retried for CLEANUP_RETRY_S with a note
        on stderr each time; whatever is still there then (or when a second
        Ctrl-C cuts the retries short) is named with the command that removes
        it, and CleanupError is raised."""
        self._closing.set()
        for watcher in self._watchers:
            watcher.close()
        for run in self._runs:
            if run.follower is not None:
                run.follower.close()
        failures: dict[str, str] = {}
        try:
            failures = self._delete_jobs(grace_period_s=0 if force else None)
        finally:
            left = [name for name in self._created if name not in self._deleted]
            if left:  # said even when a second Ctrl-C interrupts the retries
                self._on_progress(self._leftover_note(left, failures))
        if left:
            raise CleanupError("could not delete tracer job(s) " + "; ".join(
                f"{self._options.job_namespace}/{name}: {failures.get(name, 'interrupted')}" for name in left)
                + f" (remove them with 'kubectl bpf gc --job-namespace {self._options.job_namespace}')",
                unreachable=any(reason.startswith(UNREACHABLE_PREFIX) for reason in failures.values()))

    def _delete_jobs(self, *, grace_period_s: Optional[int]) -> dict[str, str]:
        """Delete every created Job not deleted yet, retrying while the API
        server cannot be reached; returns why each remaining one failed."""
        deadline = time.monotonic() + CLEANUP_RETRY_S
        delay = CLEANUP_BACKOFF_S
        while True:
            failures: dict[str, str] = {}
            for name in [name for name in self._created if name not in self._deleted]:
                try:
                    jobs.delete_job(self._kube, self._options.job_namespace, name,
                                    grace_period_s=grace_period_s)
                    self._deleted.add(name)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    failures[name] = f"{UNREACHABLE_PREFIX}{exc}"
                except errors.KubeError as exc:
                    if isinstance(exc, (errors.PermissionDeniedError, errors.NotFoundError)):
                        failures[name] = str(exc)
                        continue
                    failures[name] = f"{UNREACHABLE_PREFIX}{exc}"  # 5xx: the server is restarting
            retryable = [name for name, reason in failures.items() if reason.startswith(UNREACHABLE_PREFIX)]
            remaining_s = deadline - time.monotonic()
            if not retryable or remaining_s <= 0:
                return failures
            self._on_progress(f"cleanup: {len(retryable)} tracer job(s) not deleted yet "
                              f"({failures[retryable[0]]}); retrying for {remaining_s:.0f}s more")
            time.sleep(min(delay, remaining_s))
            delay = min(delay * 2, CLEANUP_BACKOFF_MAX_S)

    def _leftover_note(self, left: Sequence[str], failures: dict[str, str]) -> str:
        """Exactly what stays on the cluster, what removes it by itself and when,
        and the command that removes it now."""
        namespace, options = self._options.job_namespace, self._options
        nodes = {run.job_name: run.group.node for run in self._runs}
        lines = ["cleanup failed; left on the cluster:"]
        lines += [f"  job {namespace}/{name} (node {nodes.get(name, '?')}): "
                  f"{failures.get(name, 'interrupted')}" for name in left]
        lines.append(f"  each agent stops by itself {options.lease_ttl_s:g}s after the last lease renewal "
                     f"(--lease-ttl), its Job is deleted {options.ttl_s}s after it finishes (--job-ttl);")
        lines.append(f"  to remove them now: kubectl delete job -n {namespace} {' '.join(left)}"
                     f"  (or: kubectl bpf gc --job-namespace {namespace})")
        return "\n".join(lines)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(force=exc_info[0] is not None)  # after a failure nothing is worth waiting for
