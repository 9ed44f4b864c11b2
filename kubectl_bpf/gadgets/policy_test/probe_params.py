"""The probe gadget's run parameters, carried in RunSpec.params: which probes to
send from which source network namespace, and how gently.

Shared by the client (which builds them from pods it resolved) and the agent
(which resolves the sources on its node and sends the probes), so both validate
the same way: a ValueError (or a TypeError for an unknown field) names the
problem. Pure: no I/O, nothing from the agent's runtime beyond the container-ID
syntax, and no click, kubernetes or yaml.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from typing import Any, Optional

from kubectl_bpf.agent import errors, targets

PROTOCOLS = ("TCP", "UDP")
# The probes' own source ports. Linux's default ephemeral range (32768-60999)
# includes them, so a pod's connection may hold one: the agent then skips that
# port (bind fails) and takes the next one, and never reuses a port while an
# attempt on it may still collect evidence.
DEFAULT_SPORT_MIN, DEFAULT_SPORT_MAX = 42000, 42999
MAX_ATTEMPTS = 100  # attempts per probe: more says nothing a FLAKY verdict would not
MAX_TIMEOUT_S = 60.0  # past a minute no probe answer is "slow": it is lost
MAX_ID_LEN = 128  # the id travels in every UDP payload ("kubectl-bpf probe <id>")
MAX_GRACE_S = 10.0


def _positive_int(value: Any, what: str) -> int:
    """JSON has no int/bool distinction worth trusting: refuse bools and floats."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, not {value!r}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class ProbeSource:
    """The source pod as host facts: exactly one of a container ID (any runtime
    prefix), a PID, or a netns file. The agent enters that network namespace."""

    container_id: Optional[str] = None
    pid: Optional[int] = None
    netns_path: Optional[str] = None

    def __post_init__(self) -> None:
        given = [name for name in ("container_id", "pid", "netns_path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a probe source needs exactly one of container_id, pid, netns_path; "
                             f"got {', '.join(given) or 'none'}")
        if self.container_id is not None:
            try:
                object.__setattr__(self, "container_id", targets.normalize_container_id(self.container_id))
            except errors.BadInputError as exc:
                raise ValueError(str(exc)) from None
        if self.pid is not None and _positive_int(self.pid, "source pid") <= 0:
            raise ValueError(f"invalid source pid {self.pid}")
        if self.netns_path is not None and not self.netns_path.startswith("/"):
            raise ValueError(f"source netns_path must be absolute, not {self.netns_path!r}")

    def describe(self) -> str:
        """For error messages: which source could not be used."""
        if self.container_id is not None:
            return f"container {self.container_id[:12]}"
        if self.pid is not None:
            return f"pid {self.pid}"
        return f"netns {self.netns_path}"


@dataclasses.dataclass(frozen=True)
class ProbeSpec:
    """One probe: ``attempts`` connection attempts from ``src`` to dst_ip:port,
    each waiting at most ``timeout_s`` for an answer."""

    id: str
    src: ProbeSource
    dst_ip: str
    port: int
    protocol: str = "TCP"
    attempts: int = 3  # a FLAKY verdict needs more than one
    timeout_s: float = 2.0  # one TCP SYN retransmission (after 1 s) fits in it

    def __post_init__(self) -> None:
        if (not isinstance(self.id, str) or not 1 <= len(self.id) <= MAX_ID_LEN
                or not self.id.isprintable()):
            raise ValueError(f"probe id must be 1-{MAX_ID_LEN} printable characters, not {self.id!r}")
        try:
            object.__setattr__(self, "dst_ip", str(ipaddress.ip_address(str(self.dst_ip).strip())))
        except ValueError:
            raise ValueError(f"probe {self.id}: malformed dst_ip {self.dst_ip!r}") from None
        if not 1 <= _positive_int(self.port, f"probe {self.id}: port") <= 65535:
            raise ValueError(f"probe {self.id}: port {self.port} is not in 1-65535")
        protocol = str(self.protocol).upper()
        if protocol not in PROTOCOLS:
            raise ValueError(f"probe {self.id}: protocol must be TCP or UDP, not {self.protocol!r}")
        object.__setattr__(self, "protocol", protocol)
        if not 1 <= _positive_int(self.attempts, f"probe {self.id}: attempts") <= MAX_ATTEMPTS:
            raise ValueError(f"probe {self.id}: attempts must be 1-{MAX_ATTEMPTS}, not {self.attempts}")
        timeout = _number(self.timeout_s, f"probe {self.id}: timeout_s")
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise ValueError(f"probe {self.id}: timeout_s must be in (0, {MAX_TIMEOUT_S:g}], not {timeout}")
        object.__setattr__(self, "timeout_s", timeout)

    @property
    def family(self) -> int:
        return 6 if ":" in self.dst_ip else 4

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> "ProbeSpec":
        if not isinstance(fields, dict):
            raise ValueError(f"a probe must be an object, not {fields!r}")
        fields = dict(fields)
        src = fields.pop("src", None)
        if not isinstance(src, dict):
            raise ValueError(f"probe {fields.get('id')!r}: src must be an object")
        return cls(src=ProbeSource(**src), **fields)


@dataclasses.dataclass(frozen=True)
class ProbeParams:
    """Everything one probe run needs. Every attempt takes a fresh source port
    from [sport_min, sport_max]; attempts start at most ``rate_per_s`` per
    second, at most ``max_in_flight`` at once, and at most one per probe."""

    probes: tuple[ProbeSpec, ...]
    sport_min: int = DEFAULT_SPORT_MIN
    sport_max: int = DEFAULT_SPORT_MAX
    rate_per_s: float = 50.0  # attempt starts per second, across all probes
    max_in_flight: int = 32
    evidence_grace_s: float = 0.5  # keep tracing this long after an attempt before concluding

    def __post_init__(self) -> None:
        if not self.probes:
            raise ValueError("a probe run needs at least one probe")
        ids = [probe.id for probe in self.probes]
        duplicates = sorted({probe_id for probe_id in ids if ids.count(probe_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate probe ids: {', '.join(duplicates)}")
        low = _positive_int(self.sport_min, "sport_min")
        high = _positive_int(self.sport_max, "sport_max")
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"source port range {low}-{high} must satisfy 1024 <= min <= max <= 65535")
        if _positive_int(self.max_in_flight, "max_in_flight") < 1:
            raise ValueError("max_in_flight must be >= 1")
        if high - low + 1 < 2 * self.max_in_flight:
            # Ports stay held through the evidence grace period, after the attempt.
            raise ValueError(f"source port range {low}-{high} is too small for max_in_flight "
                             f"{self.max_in_flight}: it needs at least twice as many ports")
        rate = _number(self.rate_per_s, "rate_per_s")
        if not 0 < rate <= 10000:
            raise ValueError(f"rate_per_s must be in (0, 10000], not {rate}")
        object.__setattr__(self, "rate_per_s", rate)
        grace = _number(self.evidence_grace_s, "evidence_grace_s")
        if not 0 <= grace <= MAX_GRACE_S:
            raise ValueError(f"evidence_grace_s must be in [0, {MAX_GRACE_S:g}], not {grace}")
        object.__setattr__(self, "evidence_grace_s", grace)

    @property
    def total_attempts(self) -> int:
        """The number of ``probe`` records a complete run emits."""
        return sum(probe.attempts for probe in self.probes)

    def to_dict(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["probes"] = list(document["probes"])  # JSON's shape, as from_dict receives it
        for probe in document["probes"]:
            probe["src"] = {key: value for key, value in probe["src"].items() if value is not None}
        return document

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "ProbeParams":
        fields = dict(params)
        probes = fields.pop("probes", None)
        if not isinstance(probes, list):
            raise ValueError("probe params need a list of probes")
        return cls(probes=tuple(ProbeSpec.from_dict(probe) for probe in probes), **fields)
