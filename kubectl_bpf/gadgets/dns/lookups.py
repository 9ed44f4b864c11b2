"""Decoded DNS messages to lookups: queries matched to responses, retries
grouped, unanswered ones declared, search-list chains recognised.

Pure (no I/O, time is passed in), so every rule here is unit-tested with
made-up messages. The rules:

- A response belongs to the query with the same 5-tuple and id, seen in the
  same netns. Latency is from that query to the response.
- A query for a name and type that the same client is still waiting for is
  a retry of it (resolvers resend after their timeout, often with the same id
  but sometimes to the next server): it joins that lookup.
- A lookup with no response ``timeout_s`` after its last query is UNANSWERED.
- Search-list chains: a resolver that finds fewer than ``ndots`` dots in a
  name tries it with each search suffix in turn, then as it is (as it is
  first when it has enough dots). A query whose name is the next candidate
  of such a chain for the same client and type joins it. The lookups of a
  chain are held back until the chain ends (an answer with data, the
  candidates exhausted, or ``timeout_s`` without a next try), so every one is
  emitted knowing its chain; a chain of one lookup is no chain.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, NamedTuple, Optional

from kubectl_bpf.gadgets.dns import decode, schema

UNANSWERED = "UNANSWERED"
MAX_PENDING = 65536  # lookups awaiting an answer; beyond it the oldest is declared UNANSWERED
MAX_TALLIES = 10000  # names (or servers) tallied one by one; the rest together as OTHER
OTHER = "(other)"


class Observed(NamedTuple):
    """A DNS message seen in a target netns, with where it went."""

    time: float  # wall clock, seconds
    netns: int
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    message: decode.Message


@dataclasses.dataclass
class _Lookup:
    netns: int
    client: str
    client_port: int
    server: str
    server_port: int
    transport: str
    id: int
    name: str
    qtype: int
    edns: Optional[decode.Edns]
    first: float
    last: float
    tuples: list[tuple[Any, ...]]
    sent: dict[tuple[Any, ...], float]
    attempts: int = 1
    record: Optional[schema.DnsRecord] = None
    chain: Optional["_Chain"] = None


@dataclasses.dataclass
class _Chain:
    id: int
    key: tuple[int, str, int]  # netns, client, qtype
    base: str
    candidates: list[str]  # names still to come, in the resolver's order
    members: list[_Lookup]
    idle_since: float = 0.0


_SECOND: list[Any] = [-1, ""]  # the last whole second formatted: records come many per second


def iso_time(wall: float) -> str:
    second = int(wall)
    if second != _SECOND[0]:
        _SECOND[0], _SECOND[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_SECOND[1]}.{int((wall - second) * 1e6):06d}Z"


def dots(name: str) -> int:
    return name.rstrip(".").count(".")


def percentile(values: list[float], fraction: float) -> Optional[float]:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return round(ordered[int(rank) - 1], 3)


class Tally:
    """Per name or per server: queries, rcodes, unanswered, latencies. The
    counts are exact; the percentiles come from at most MAX_SAMPLES latencies
    (exact below that, a uniform reservoir sample above), so an agent that
    runs for hours keeps a bounded memory."""

    MAX_SAMPLES = 4096

    def __init__(self) -> None:
        self.lookups = 0
        self.queries = 0
        self.rcodes: dict[str, int] = {}
        self.unanswered = 0
        self.latencies: list[float] = []
        self._answered = 0
        self._random = random.Random(self.MAX_SAMPLES)  # seeded: the same stream gives the same report
        self.max_ms: Optional[float] = None

    def add(self, record: schema.DnsRecord) -> None:
        self.lookups += 1
        self.queries += 1 + record["retries"]
        self.rcodes[record["rcode"]] = self.rcodes.get(record["rcode"], 0) + 1
        latency = record["latency_ms"]
        if record["rcode"] == UNANSWERED:
            self.unanswered += 1
        elif latency is not None:
            self._answered += 1
            self.max_ms = latency if self.max_ms is None else max(self.max_ms, latency)
            if len(self.latencies) < self.MAX_SAMPLES:
                self.latencies.append(latency)
            else:
                slot = self._random.randrange(self._answered)
                if slot < self.MAX_SAMPLES:
                    self.latencies[slot] = latency

    def to_record(self, key: str) -> schema.TallyRecord:
        return {"key": key, "lookups": self.lookups, "queries": self.queries,
                "rcodes": dict(sorted(self.rcodes.items())), "unanswered": self.unanswered,
                "p50_ms": percentile(self.latencies, 0.5), "p99_ms": percentile(self.latencies, 0.99),
                "max_ms": None if self.max_ms is None else round(self.max_ms, 3)}


class Tracker:
    """Feed it messages and the clock; it returns records ready to emit."""

    def __init__(self, *, timeout_s: float, search: dict[int, tuple[tuple[str, ...], int]],
                 client_names: Optional[dict[int, str]] = None) -> None:
        """search: netns inode -> (search suffixes, ndots) from its resolv.conf;
        a netns without one has no chains. client_names: netns -> a label."""
        self.timeout_s = timeout_s
        self._search = {netns: (tuple(s.lower().strip(".") for s in suffixes), ndots)
                        for netns, (suffixes, ndots) in search.items()}
        self._names = client_names or {}
        self._by_tuple: dict[tuple[Any, ...], _Lookup] = {}
        self._by_name: dict[tuple[int, str, str, int], _Lookup] = {}
        self._chains: dict[tuple[int, str, int], list[_Chain]] = {}
        self._next_chain = 0
        self.unmatched_responses = 0
        self.queries = 0
        self.responses = 0
        self.per_name: dict[str, Tally] = {}
        self.per_server: dict[str, Tally] = {}
        self.chain_count = 0
        self.chain_wasted_ms = 0.0

    @property
    def pending(self) -> int:
        return len(self._by_name)

    # -- messages ---------------------------------------------------------

    def observe(self, seen: Observed) -> list[dict[str, Any]]:
        if seen.message.response:
            return self._response(seen)
        self._query(seen)
        return []

    def _query(self, seen: Observed) -> None:
        message = seen.message
        self.queries += 1
        name_key = (seen.netns, seen.src, message.name.lower(), message.qtype)
        exact = (seen.netns, seen.src, seen.sport, seen.dst, seen.dport, seen.transport, message.id)
        lookup = self._by_name.get(name_key)
        if lookup is not None and lookup.transport == seen.transport:
            lookup.attempts += 1
            lookup.last = seen.time
            if exact not in lookup.sent:
                lookup.tuples.append(exact)
            lookup.sent[exact] = seen.time
            self._by_tuple[exact] = lookup
            return
        if lookup is not None:
            self._forget(lookup)  # a TCP retry after a truncated UDP answer: a new lookup
        if len(self._by_name) >= MAX_PENDING:
            oldest = min(self._by_name.values(), key=lambda item: item.last)
            self._unanswered(oldest)
        lookup = _Lookup(netns=seen.netns, client=seen.src, client_port=seen.sport, server=seen.dst,
                         server_port=seen.dport, transport=seen.transport, id=message.id,
                         name=message.name, qtype=message.qtype, edns=message.edns, first=seen.time,
                         last=seen.time, tuples=[exact], sent={exact: seen.time})
        self._by_name[name_key] = lookup
        self._by_tuple[exact] = lookup
        self._join_chain(lookup)

    def _response(self, seen: Observed) -> list[dict[str, Any]]:
        message = seen.message
        self.responses += 1
        exact = (seen.netns, seen.dst, seen.dport, seen.src, seen.sport, seen.transport, message.id)
        lookup = self._by_tuple.get(exact)
        if lookup is None or lookup.record is not None:
            self.unmatched_responses += 1
            return []
        self._forget(lookup)
        lookup.server, lookup.server_port = seen.src, seen.sport
        latency = (seen.time - lookup.sent[exact]) * 1000
        lookup.record = self._record(lookup, rcode=decode.rcode_name(message.rcode),
                                     latency_ms=round(max(latency, 0.0), 3), message=message)
        # A truncated answer is not the end: the client asks again over TCP, and that joins the chain.
        positive = bool(message.answers) and message.rcode == 0 and not message.truncated
        return self._completed(lookup, seen.time, positive=positive)

    def _forget(self, lookup: _Lookup) -> None:
        for exact in lookup.tuples:
            self._by_tuple.pop(exact, None)
        self._by_name.pop((lookup.netns, lookup.client, lookup.name.lower(), lookup.qtype), None)

    # -- records ----------------------------------------------------------

    def _record(self, lookup: _Lookup, *, rcode: str, latency_ms: Optional[float],
                message: Optional[decode.Message]) -> schema.DnsRecord:
        return {
            "time": iso_time(lookup.first), "id": lookup.id, "name": lookup.name,
            "qtype": decode.type_name(lookup.qtype), "rcode": rcode, "latency_ms": latency_ms,
            "answers": [{"name": a.name, "type": a.type, "ttl": a.ttl, "data": a.data}
                        for a in message.answers] if message else [],
            "answer_count": message.answer_count if message else 0,
            "truncated": message.truncated if message else False,
            "partial": message.partial if message else False,
            "server": lookup.server, "server_port": lookup.server_port,
            "client": self._names.get(lookup.netns, lookup.client), "client_ip": lookup.client,
            "client_port": lookup.client_port, "netns": lookup.netns, "transport": lookup.transport,
            "retries": lookup.attempts - 1,
            "edns": ({"udp_size": lookup.edns.udp_size, "version": lookup.edns.version,
                      "dnssec_ok": lookup.edns.dnssec_ok} if lookup.edns else None),
            "chain": None,
        }

    def _unanswered(self, lookup: _Lookup) -> list[dict[str, Any]]:
        self._forget(lookup)
        lookup.record = self._record(lookup, rcode=UNANSWERED, latency_ms=None, message=None)
        return self._completed(lookup, lookup.last + self.timeout_s, positive=False)

    def expire(self, now: float) -> list[dict[str, Any]]:
        """Lookups past the timeout become UNANSWERED; idle chains end."""
        out: list[dict[str, Any]] = []
        for lookup in [item for item in self._by_name.values() if now - item.last >= self.timeout_s]:
            out += self._unanswered(lookup)
        for chains in list(self._chains.values()):
            for chain in list(chains):
                settled = all(member.record is not None for member in chain.members)
                if settled and now - chain.idle_since >= self.timeout_s:
                    out += self._close(chain, answered=None)
        return out

    def finish(self) -> list[dict[str, Any]]:
        """End of the run: lookups still waiting are left out (they are counted
        as pending, not called UNANSWERED before their time); chains end."""
        out: list[dict[str, Any]] = []
        for chains in list(self._chains.values()):
            for chain in list(chains):
                out += self._close(chain, answered=None)
        return out

    def _tally(self, record: schema.DnsRecord) -> None:
        for table, key in ((self.per_name, record["name"].lower()),
                           (self.per_server, f"{record['server']}:{record['server_port']}")):
            tally = table.get(key)
            if tally is None:
                # past MAX_TALLIES (random subdomains, say): bounded memory, exact totals
                slot = key if len(table) < MAX_TALLIES else OTHER
                tally = table.get(slot) or table.setdefault(slot, Tally())
            tally.add(record)

    def _completed(self, lookup: _Lookup, now: float, *, positive: bool) -> list[dict[str, Any]]:
        assert lookup.record is not None
        self._tally(lookup.record)
        chain = lookup.chain
        if chain is None:
            return [dict(lookup.record)]
        chain.idle_since = now
        if positive:
            return self._close(chain, answered=lookup)
        if (not chain.candidates and not lookup.record["truncated"]
                and all(m.record is not None for m in chain.members)):
            return self._close(chain, answered=None)
        return []

    # -- chains -----------------------------------------------------------

    def _join_chain(self, lookup: _Lookup) -> None:
        search = self._search.get(lookup.netns)
        if not search or not search[0]:
            return
        suffixes, ndots = search
        name = lookup.name.lower().rstrip(".")
        key = (lookup.netns, lookup.client, lookup.qtype)
        for chain in self._chains.get(key, []):
            last = chain.members[-1]
            if last.record is not None and last.record["truncated"] and last.name.lower().rstrip(".") == name:
                chain.members.append(lookup)
                lookup.chain = chain
                return
            if name in chain.candidates:
                del chain.candidates[:chain.candidates.index(name) + 1]
                chain.members.append(lookup)
                lookup.chain = chain
                return
        if name.endswith("." + suffixes[0]):
            base = name[:-len(suffixes[0]) - 1]
            candidates = [f"{base}.{suffix}" for suffix in suffixes[1:]]
            if dots(base) < ndots:
                candidates.append(base)
        elif dots(name) >= ndots:
            base, candidates = name, [f"{name}.{suffix}" for suffix in suffixes]
        else:
            return
        self._next_chain += 1
        chain = _Chain(id=self._next_chain, key=key, base=base, candidates=candidates, members=[lookup])
        self._chains.setdefault(key, []).append(chain)
        lookup.chain = chain

    def _close(self, chain: _Chain, *, answered: Optional[_Lookup]) -> list[dict[str, Any]]:
        chains = self._chains.get(chain.key, [])
        if chain in chains:
            chains.remove(chain)
            if not chains:
                del self._chains[chain.key]
        done = [member for member in chain.members if member.record is not None]
        for member in chain.members:
            member.chain = None  # a member still waiting is emitted alone when it ends
        if len(chain.members) < 2:
            return [dict(member.record) for member in done if member.record]
        first = chain.members[0].first
        end = max((m.first + (m.record["latency_ms"] or 0) / 1000 for m in done if m.record), default=first)
        wasted = ((answered.first if answered else end) - first) * 1000
        self.chain_count += 1
        self.chain_wasted_ms += wasted
        answered_name = answered.name.lower().rstrip(".") if answered else None
        suffix: Optional[str] = None
        if answered_name is not None and answered_name != chain.base:
            suffix = answered_name[len(chain.base) + 1:]
        out = []
        for step, member in enumerate(done, 1):
            assert member.record is not None
            member.record["chain"] = {
                "id": chain.id, "base": chain.base, "step": step, "steps": len(done),
                "names": [m.name for m in done], "answered_by": answered_name, "suffix": suffix,
                "wasted_ms": round(wasted, 3), "total_ms": round((end - first) * 1000, 3)}
            out.append(dict(member.record))
        return out

    # -- summary ----------------------------------------------------------

    def tallies(self, top: int) -> tuple[list[schema.TallyRecord], list[schema.TallyRecord]]:
        def ranked(table: dict[str, Tally]) -> list[schema.TallyRecord]:
            items = sorted(table.items(), key=lambda item: (-item[1].lookups, item[0]))[:top]
            return [tally.to_record(key) for key, tally in items]
        return ranked(self.per_name), ranked(self.per_server)


def parse_resolv_conf(text: str) -> tuple[tuple[str, ...], int]:
    """(search suffixes, ndots) as glibc reads them: the last search or
    domain line wins; ndots defaults to 1 and is capped at 15."""
    search: tuple[str, ...] = ()
    ndots = 1
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] in ("search", "domain"):
            search = tuple(field.lower().strip(".") for field in fields[1:] if field.strip("."))
        elif fields[0] == "options":
            for option in fields[1:]:
                if option.startswith("ndots:") and option[6:].isdigit():
                    ndots = min(int(option[6:]), 15)
    return search, ndots
