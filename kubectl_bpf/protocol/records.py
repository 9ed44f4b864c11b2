"""The record types of the agent's JSON-lines stream, declared once.

Every line is one flat JSON object: the envelope keys ``v``, ``seq`` and
``type`` beside the record's own fields. ``preflight`` comes first, ``ready``
once programs are attached, gadget records (``drop``, ``flows``) and periodic
``stats`` follow, and ``end`` is always last, so a reader can tell a finished
stream from a broken one. Gadget payloads are declared in
``gadgets/<name>/schema.py``; the records here are the gadget-independent ones.
"""

from __future__ import annotations

from typing import Any, NotRequired, Optional, TypedDict

# Record type names: one place, so agent and client cannot disagree.
PREFLIGHT = "preflight"
READY = "ready"
STATS = "stats"
SUMMARY = "summary"
ERROR = "error"
END = "end"


class Preflight(TypedDict):
    """What the agent found before loading anything."""

    gadget: str
    agent_version: str
    kernel: str
    btf: bool
    hook: Optional[str]  # the attach point(s) used, e.g. "tp_btf/kfree_skb"; None if not loaded
    missing_hooks: dict[str, str]  # hook -> why this kernel cannot run it (the others still run)
    capabilities: list[str]
    lockdown: str
    target: dict[str, object]
    # What the kernel lets the gadget do: {"reasons": "kernel"|"derived"|"unknown",
    # "headers": bool, "degraded": [one line each]}; see gadgets/drops/modes.py.
    mode: NotRequired[dict[str, Any]]
    # Which netns are this node's ({"shared_kernel", "root_netns", "netns": count}); see
    # agent/nodescope.py. Enforced in the kernel by drops; tcp does not yet.
    node_scope: NotRequired[dict[str, object]]


class Ready(TypedDict):
    """Programs are attached: everything from now on is seen."""

    time: str
    load_ms: float
    prog_id: int  # the kernel's id of the attached program, for audit


class Counts(TypedDict):
    """Accounting of matching drops: drops == events + lost + suppressed, once
    everything in flight has been read (see Summary.unaccounted)."""

    drops: int  # matching drops the kernel saw
    events: int  # event records emitted on this stream
    lost: int  # events the ring buffer could not take
    suppressed: int  # rate limited, aggregated, or past --count
    missed: int  # times the kernel skipped our program (recursion on one CPU): not in drops


class Stats(Counts):
    pending: int  # events in flight (in the ring buffer, not yet read)
    elapsed_s: float


class GadgetSummary(Counts):
    """What a gadget reports at the end; the runner adds why it stopped."""

    unaccounted: int  # events the kernel emitted that never reached the stream: 0 unless a bug
    duration_s: float
    reasons: dict[str, int]  # exact count per reason name
    flows: list[dict[str, object]]  # the top flows by count
    flow_count: int
    flow_overflow: int  # drops not in any flow because the flow table was full


class Summary(GadgetSummary):
    # duration, count, max-duration, lease-expired, or the signal name; the client
    # replaces a signal it did not send with job-deleted or pod-deleted (the signal
    # then moves to a "signal" field): someone else stopped the session.
    stopped_by: str


class Error(TypedDict):
    message: str
    exit_code: int


class End(TypedDict):
    status: str  # "ok" or "error"
    exit_code: int
