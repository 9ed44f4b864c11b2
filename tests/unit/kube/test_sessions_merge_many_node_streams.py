"""Many nodes' record streams through the session's real merge (a follower
thread per node feeding its RecordStream, the shared queue, items()): every
record arrives exactly once, tagged with the node it came from, whatever the
chunking; a node that fails (its agent never starts, its Job is deleted, its
stream is cut) is reported for that node while the others stream to the end,
and the exit code says a node failed.

The sources are recorded logs, not the API (Session's ``source_for`` seam):
bench/fanout_bench.py replays 200 nodes through the same path."""

from __future__ import annotations

import random
import threading
from typing import Any, ClassVar, Iterator, Optional, Sequence

import pytest

from kubectl_bpf.cli import live
from kubectl_bpf.kube import client, errors, session, settings, targets, watch
from kubectl_bpf.protocol import codec, exitcodes, spec, stream

from .conftest import FakeCluster

OPTIONS = settings.SessionOptions(image="agent:1", job_namespace="kubectl-bpf", privileged=False,
                                  start_timeout_s=60, ttl_s=300, max_duration_s=3600, lease_ttl_s=60)


def node_log(node: int, drops: int, *, end: bool = True) -> bytes:
    """A tracer pod's log with kubelet timestamps, as the follower reads it."""
    lines = [("preflight", {"gadget": "drops", "target": {}}), ("ready", {"prog_id": 7})]
    lines += [("drop", {"reason": "NO_SOCKET", "src": f"10.1.{node}.{i % 250}", "dst": "10.2.0.5",
                        "dport": i, "protocol": "UDP"}) for i in range(drops)]
    lines.append(("summary", {"drops": drops, "events": drops, "lost": 0, "suppressed": 0,
                              "stopped_by": "duration"}))
    if end:
        lines.append(("end", {"status": "ok", "exit_code": 0}))
    return "".join(f"2026-12-02T15:00:{seq // 1000:02d}.{seq % 1000:03d}1Z "
                   f"{codec.encode(kind, seq, payload)}\n"
                   for seq, (kind, payload) in enumerate(lines, start=1)).encode()


class Replay:
    """A recorded log cut at random byte positions, fed to the node's RecordStream."""

    def __init__(self, data: bytes, record_stream: stream.RecordStream, rng: random.Random,
                 fail: Optional[Exception] = None) -> None:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 40)))
        self._chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
        self._stream = record_stream
        self._fail = fail
        self.closed = threading.Event()

    def records(self) -> Iterator[dict[str, Any]]:
        for chunk in self._chunks:
            yield from self._stream.feed(chunk)
        if self._fail is not None:
            raise self._fail

    def close(self) -> None:
        self.closed.set()


def make_session(kube: client.Kube, nodes: Sequence[str], logs_by_node: dict[str, bytes],
                 fail: Optional[dict[str, Exception]] = None) -> tuple[session.Session, list[str]]:
    notes: list[str] = []
    rng = random.Random(5)

    def source_for(run: session.NodeRun, record_stream: stream.RecordStream) -> session.RecordSource:
        node = run.group.node
        return Replay(logs_by_node[node], record_stream, rng, (fail or {}).get(node))

    live_session = session.Session(kube, gadget="drops", run_spec=spec.RunSpec(gadget="drops"),
                                   groups=[targets.NodeGroup(node, ()) for node in nodes], options=OPTIONS,
                                   command="kubectl-bpf drops node/...", on_progress=notes.append,
                                   source_for=source_for)
    return live_session, notes


def drain(live_session: session.Session) -> tuple[list[session.NodeRecord], list[session.NodeFinished]]:
    got: list[session.NodeRecord] = []
    finished: list[session.NodeFinished] = []
    for item in live_session.items(poll_s=0.05):
        if isinstance(item, session.NodeRecord):
            got.append(item)
        elif isinstance(item, session.NodeFinished):
            finished.append(item)
    return got, finished


def test_every_record_of_every_node_arrives_once_with_its_node(kube: client.Kube) -> None:
    nodes = [f"node-{i:02d}" for i in range(24)]
    logs_by_node = {node: node_log(i, drops=50 + 7 * i) for i, node in enumerate(nodes)}
    live_session, _ = make_session(kube, nodes, logs_by_node)
    with live_session:
        live_session.start_streams()
        got, finished = drain(live_session)
    keys = [(item.node, item.record["seq"]) for item in got]
    assert len(keys) == len(set(keys))  # no duplicates
    # drops + preflight, ready, summary and end
    expected = {(node, seq) for i, node in enumerate(nodes) for seq in range(1, 50 + 7 * i + 4 + 1)}
    assert set(keys) == expected  # no loss
    for item in got:  # the NODE of each record is the node whose log it came from
        if item.record["type"] == "drop":
            assert item.record["src"].startswith(f"10.1.{nodes.index(item.node)}.")
    for node in nodes:  # each node's records stay in order
        seqs = [seq for name, seq in keys if name == node]
        assert seqs == sorted(seqs)
    assert sorted(f.node for f in finished) == nodes
    assert all(f.error is None and f.ended and f.exit_code == exitcodes.OK for f in finished)


def test_a_node_whose_job_was_deleted_is_reported_while_the_others_finish(
        kube: client.Kube, cluster: FakeCluster) -> None:
    nodes = ["node-a", "node-b", "node-c"]
    logs_by_node = {node: node_log(i, drops=30, end=node != "node-b") for i, node in enumerate(nodes)}
    # node-b's log stops mid-stream and its Job is gone (the fake has no such Job: 404).
    live_session, _ = make_session(kube, nodes, logs_by_node)
    with live_session:
        live_session.start_streams()
        got, finished = drain(live_session)
    by_node = {f.node: f for f in finished}
    assert by_node["node-b"].exit_code == exitcodes.STOPPED_OUTSIDE
    assert "tracer job kubectl-bpf/" in str(by_node["node-b"].error)
    assert "deleted by someone else" in str(by_node["node-b"].error)
    assert by_node["node-a"].error is None and by_node["node-c"].error is None
    assert sum(1 for item in got if item.node == "node-c" and item.record["type"] == "drop") == 30
    assert sum(1 for item in got if item.node == "node-b" and item.record["type"] == "drop") == 30


class FakeWatcher:
    """StartWatcher for Jobs whose agents start, or fail as listed (by Job name)."""

    failures: ClassVar[dict[str, errors.KubeError]] = {}

    def __init__(self, _kube: Any, _namespace: str, job_name: str, **_: Any) -> None:
        self._job = job_name

    def wait(self) -> str:
        if self._job in self.failures:
            raise self.failures[self._job]
        return self._job + "-pod"

    def close(self) -> None:
        pass


def fail_nodes(monkeypatch: pytest.MonkeyPatch, live_session: session.Session,
               failures: dict[str, errors.KubeError]) -> None:
    by_job = {job["metadata"]["name"]: failures[node]
              for node, job in zip(live_session.nodes, live_session.jobs) if node in failures}
    monkeypatch.setattr(FakeWatcher, "failures", by_job)
    monkeypatch.setattr(watch, "StartWatcher", FakeWatcher)


def test_a_node_whose_agent_never_starts_fails_alone_and_sets_the_exit_code(
        kube: client.Kube, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = ["node-a", "node-b", "node-c"]
    logs_by_node = {node: node_log(i, drops=20) for i, node in enumerate(nodes)}
    live_session, notes = make_session(kube, nodes, logs_by_node)
    fail_nodes(monkeypatch, live_session, {"node-b": errors.StartError(
        'tracer pod kubectl-bpf/x: image "agent:1" not found (ErrImagePull)')})
    failed_job = live_session.jobs[live_session.nodes.index("node-b")]["metadata"]["name"]
    finished: list[session.NodeFinished] = []
    shown: list[tuple[str, str]] = []
    code = live.run_session(live_session, on_record=lambda node, record: shown.append((node, record["type"])),
                            on_finished=finished.append)
    assert code == errors.StartError("").exit_code != exitcodes.OK
    assert any(note.startswith("node-b: error: ") and "ErrImagePull" in note for note in notes)
    by_node = {f.node: f for f in finished}
    assert "ErrImagePull" in str(by_node["node-b"].error) and not by_node["node-b"].ended
    assert by_node["node-a"].error is None and by_node["node-c"].error is None
    assert shown.count(("node-a", "drop")) == 20 and shown.count(("node-c", "drop")) == 20
    assert not any(node == "node-b" for node, _ in shown)
    # node-b's Job went when its failure was known, the others' at the end
    deleted = [call[2] for call in cluster.called("delete_namespaced_job")]
    assert deleted[0] == failed_job
    assert sorted(deleted) == sorted(job["metadata"]["name"] for job in live_session.jobs)  # each once


def test_when_no_agent_starts_the_first_failure_is_raised(kube: client.Kube,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = ["node-a", "node-b"]
    live_session, _ = make_session(kube, nodes, {})
    fail_nodes(monkeypatch, live_session, dict.fromkeys(nodes, errors.StartError("node NotReady")))
    with pytest.raises(errors.StartError, match="NotReady"), live_session:
        live_session.start()
