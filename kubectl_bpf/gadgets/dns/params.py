"""The dns gadget's run parameters, carried in RunSpec.params.

Shared by the client (which fills them from flags) and the agent (which
turns them into the filter's rodata and the tracker's rules), so both
validate the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DNS_PORT = 53
MAX_PORTS = 8  # DNS_MAX_PORTS in dns.h
# 4 KiB of DNS after the headers: a full EDNS answer of the usual 1232-4096
# byte buffer sizes; larger ones are counted as snapped and marked partial.
SNAP_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class DnsParams:
    ports: tuple[int, ...] = (DNS_PORT,)  # server ports; 53 is always one
    timeout_s: float = 5.0  # the resolvers' default: no answer by then is UNANSWERED
    snap_bytes: int = SNAP_BYTES
    rcvbuf_bytes: int = 8 << 20  # each capture socket's queue; overflow is counted as lost
    top: int = 20  # names and servers listed in the summary
    # netns search lists given by the client (cluster mode, from the pod spec), by
    # container ID: [suffixes, ndots]. A container without one has its resolv.conf read.
    search: dict[str, list[Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = tuple(dict.fromkeys((DNS_PORT, *self.ports)))
        if any(not 0 < port < 65536 for port in ports):
            raise ValueError("ports must be 1..65535")
        if len(ports) > MAX_PORTS:
            raise ValueError(f"at most {MAX_PORTS - 1} ports besides 53")
        object.__setattr__(self, "ports", ports)
        if self.timeout_s <= 0:
            raise ValueError("timeout must be > 0")
        if not 64 <= self.snap_bytes <= 65535:
            raise ValueError("snap length must be 64..65535 bytes")
        if self.top < 1:
            raise ValueError("top must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "DnsParams":
        fields = dict(params)
        if "ports" in fields:
            fields["ports"] = tuple(fields["ports"])
        return cls(**fields)
