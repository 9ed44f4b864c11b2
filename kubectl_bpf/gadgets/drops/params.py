"""The drops gadget's own run parameters, carried in RunSpec.params.

Shared by the client (which fills them from flags) and the agent (which
turns them into rodata and map sizes), so both validate the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MIN_RING_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class DropsParams:
    reasons: tuple[str, ...] = ()  # only these reason names; empty: all
    aggregate: bool = False  # count per flow in the kernel, emit no per-drop events
    rate_limit: int = 0  # events/s across CPUs; 0: unlimited (the summary stays exact)
    # Ring size, a power of two: 2 MiB holds ~20k events, 0.2 s of a 100k/s flood. It is
    # mapped into the agent (data pages twice, for wrap-around) and counts in its RSS:
    # measured under a 240k/s flood, peak RSS 39 MB with 1 MiB, 41 MB with 2, 63 MB with 4.
    ring_bytes: int = 2 << 20
    wakeup_bytes: int = 64 << 10  # wake the reader each time the backlog grows by this (~600 events)
    top_flows: int = 20  # flows listed in summaries and in --aggregate tables

    def __post_init__(self) -> None:
        if self.ring_bytes < MIN_RING_BYTES or self.ring_bytes & (self.ring_bytes - 1):
            raise ValueError(f"ring buffer size {self.ring_bytes} is not a power of two >= 4096")
        if self.rate_limit < 0:
            raise ValueError("rate limit must be >= 0")
        if self.top_flows < 1:
            raise ValueError("top flows must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "DropsParams":
        fields = dict(params)
        if "reasons" in fields:
            fields["reasons"] = tuple(fields["reasons"])
        return cls(**fields)
