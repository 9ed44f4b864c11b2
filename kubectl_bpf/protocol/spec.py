"""What the client asks the agent to do: one JSON document, passed as a single
argument, so no shell ever parses user input and the agent needs no API access.

The client resolves Kubernetes names to host facts (container IDs, pod IPs);
the agent turns those into kernel facts (netns inodes) on the node.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional


class SpecError(ValueError):
    """A spec document that does not describe a valid run."""


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    """Who to trace. Empty everywhere means the whole host."""

    pids: tuple[int, ...] = ()
    netns_paths: tuple[str, ...] = ()
    container_ids: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    @property
    def is_whole_host(self) -> bool:
        return not (self.pids or self.netns_paths or self.container_ids or self.ips)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    gadget: str
    target: TargetSpec = TargetSpec()
    duration_s: Optional[float] = None  # None: until interrupted (or count)
    count: Optional[int] = None  # stop after this many event records
    stats_interval_s: float = 15.0  # heartbeat period: also proves the stream is alive
    max_duration_s: Optional[float] = None  # hard stop the agent enforces itself, whatever else
    lease_file: Optional[str] = None  # downwardAPI annotations file (agent/lease.py)
    lease_key: str = "kubectl-bpf/lease"
    lease_ttl_s: float = 90.0  # stop when the client has not renewed the lease for this long
    proc_root: str = "/proc"  # the host's /proc, mounted elsewhere in the tracer pod
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # the gadget's own

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise SpecError(f"spec is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise SpecError("spec must be a JSON object")
        target = document.pop("target", {}) or {}
        if not isinstance(target, dict) or not all(isinstance(v, list) for v in target.values()):
            raise SpecError("spec target must be an object of lists")
        try:
            return cls(target=TargetSpec(**{k: tuple(v) for k, v in target.items()}), **document)
        except TypeError as exc:
            raise SpecError(f"invalid spec: {exc}") from exc
