"""The tcp gadget's run parameters, carried in RunSpec.params.

Shared by the client (which fills them from flags) and the agent (which
turns them into rodata and map sizes), so both validate the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MIN_RING_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class TcpParams:
    aggregate: bool = False  # count per peer in the kernel, emit no lines
    evidence: bool = True  # also run the drop programs and attach a flow's drop to its failure
    # One tcp_event is 96 bytes in the ring: 1 MiB holds ~10k lines, far more than a
    # connection flood's failures between two 100 ms polls.
    ring_bytes: int = 1 << 20
    wakeup_bytes: int = 32 << 10  # wake the reader each time the backlog grows by this
    retransmit_gap_s: float = 1.0  # a connection's retransmits closer than this fold into one line
    top_peers: int = 20  # peers listed in summaries and --aggregate tables

    def __post_init__(self) -> None:
        if self.ring_bytes < MIN_RING_BYTES or self.ring_bytes & (self.ring_bytes - 1):
            raise ValueError(f"ring buffer size {self.ring_bytes} is not a power of two >= 4096")
        if self.retransmit_gap_s < 0:
            raise ValueError("retransmit gap must be >= 0")
        if self.top_peers < 1:
            raise ValueError("top peers must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "TcpParams":
        return cls(**params)
