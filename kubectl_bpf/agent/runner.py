"""One tracing session, gadget-independent: preflight, attach, stream, stop,
summarize. Whatever happens, the programs are detached and the stream ends
with a summary (when tracing started) and an ``end`` record.

Stops on the duration, the event count, SIGINT, SIGTERM or SIGHUP, or when
the reader goes away. The poll timeout is short so signals are handled
within ~100 ms: a blocking C call cannot be interrupted by Python.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from types import FrameType
from typing import Any, Optional, Protocol

import kubectl_bpf
from kubectl_bpf.agent import emit, errors, lease, loader, nodescope, preflight, targets
from kubectl_bpf.protocol import exitcodes, records, spec

POLL_TIMEOUT_MS = 100


class Gadget(Protocol):
    """The node side of a gadget, as the runner drives it."""

    name: str
    event_type: str  # record type of one event, e.g. "drop"
    btf_types: tuple[str, ...]  # kernel types whose absence means "too old"
    tracepoint: str  # "subsystem/event", for the preflight check
    # False: every program avoids bpf_probe_read_kernel, so lockdown=confidentiality is no obstacle
    reads_kernel_memory: bool

    def attach(self, target: targets.HostTarget, facts: preflight.HostFacts) -> loader.AttachInfo:
        """Load and attach."""

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        """Decoded events that arrived, waiting at most timeout_ms for one."""

    def periodic(self) -> list[tuple[str, dict[str, Any]]]:
        """Records to emit every stats interval besides ``stats`` (e.g. flows)."""

    def detach(self) -> list[dict[str, Any]]:
        """Stop tracing; returns the events still in flight (drained)."""

    def stats(self, *, events: int, discarded: int) -> records.Stats:
        """Accounting so far, given what user space emitted and threw away."""

    def summary(self, *, events: int, discarded: int, duration_s: float) -> records.GadgetSummary:
        ...

    def close(self) -> None:
        """Release everything; idempotent."""


class _StopFlag:
    """Set by signals; restores the previous handlers when done."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.reason = signal.Signals(signum).name

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def run(gadget: Gadget, run_spec: spec.RunSpec, sink: emit.Sink) -> int:
    """Run a session to its end; returns the exit code. Never raises for
    expected failures: they become an ``error`` record."""
    emitter = emit.Emitter(sink)
    try:
        try:
            return _run(gadget, run_spec, emitter)
        except errors.AgentError as exc:
            emitter.emit(records.ERROR, {"message": str(exc), "exit_code": exc.exit_code})
            emitter.emit(records.END, {"status": "error", "exit_code": exc.exit_code})
            emitter.flush()
            return exc.exit_code
        finally:
            gadget.close()
    except emit.StreamClosedError:
        return exitcodes.OK  # like `head`: the reader has all it wanted


def _run(gadget: Gadget, run_spec: spec.RunSpec, emitter: emit.Emitter) -> int:
    with _StopFlag() as stop:
        facts = preflight.check_host(btf_types=gadget.btf_types, tracepoint=gadget.tracepoint,
                                    reads_kernel_memory=gadget.reads_kernel_memory)
        target = targets.resolve_target(run_spec.target, proc_root=run_spec.proc_root)
        scope = nodescope.discover(run_spec.proc_root)
        if scope.shared_kernel:
            target = dataclasses.replace(target, node_netns=tuple(sorted(scope.netns)))
        attached = gadget.attach(target, facts)
        emitter.emit(records.PREFLIGHT, {
            "gadget": gadget.name, "agent_version": kubectl_bpf.__version__, "kernel": facts.kernel,
            "btf": facts.btf, "hook": attached.hook, "missing_hooks": dict(attached.missing),
            "capabilities": list(facts.capabilities), "lockdown": facts.lockdown,
            "target": target.to_record(), "mode": dict(attached.mode),
            "node_scope": scope.to_record()})
        emitter.emit(records.READY, {"time": _iso_now(), "load_ms": round(attached.load_ms, 1),
                                     "prog_id": attached.prog_id})
        emitter.flush()
        started = time.monotonic()
        events = discarded = 0
        limit = run_spec.count
        next_stats = started + run_spec.stats_interval_s
        client_lease = (lease.Lease(run_spec.lease_file, run_spec.lease_key, run_spec.lease_ttl_s)
                        if run_spec.lease_file else None)
        while stop.reason is None:
            batch = gadget.poll(POLL_TIMEOUT_MS)
            events, dropped = _emit_events(emitter, gadget.event_type, batch, events, limit)
            discarded += dropped
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + run_spec.stats_interval_s
                for record_type, payload in gadget.periodic():
                    emitter.emit(record_type, payload)
                stats = gadget.stats(events=events, discarded=discarded)
                stats["elapsed_s"] = round(now - started, 3)
                emitter.emit(records.STATS, dict(stats))
            emitter.flush()
            stop.reason = stop.reason or _stop_reason(run_spec, client_lease, events=events,
                                                      elapsed=now - started, now=now)
        events, dropped = _emit_events(emitter, gadget.event_type, gadget.detach(), events, limit)
        discarded += dropped
        for record_type, payload in gadget.periodic():
            emitter.emit(record_type, payload)
        summary = gadget.summary(events=events, discarded=discarded,
                                 duration_s=round(time.monotonic() - started, 3))
        emitter.emit(records.SUMMARY, {**summary, "stopped_by": stop.reason})
        emitter.emit(records.END, {"status": "ok", "exit_code": exitcodes.OK})
        emitter.flush()
    return exitcodes.OK


def _stop_reason(run_spec: spec.RunSpec, client_lease: Optional[lease.Lease], *, events: int,
                 elapsed: float, now: float) -> Optional[str]:
    if run_spec.count is not None and events >= run_spec.count:
        return "count"
    if run_spec.duration_s is not None and elapsed >= run_spec.duration_s:
        return "duration"
    if run_spec.max_duration_s is not None and elapsed >= run_spec.max_duration_s:
        return "max-duration"
    if client_lease is not None and client_lease.expired(now):
        return "lease-expired"
    return None


def _emit_events(emitter: emit.Emitter, event_type: str, batch: list[dict[str, Any]],
                 events: int, limit: Optional[int]) -> tuple[int, int]:
    """Emit up to the count limit; returns (events so far, discarded now)."""
    room = len(batch) if limit is None else max(0, min(len(batch), limit - events))
    for payload in batch[:room]:
        emitter.emit(event_type, payload)
    return events + room, len(batch) - room
