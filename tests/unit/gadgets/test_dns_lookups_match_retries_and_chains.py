"""Lookups from decoded messages: responses match by 5-tuple and id, retries
join their lookup, silence becomes UNANSWERED, and search-list tries become
one chain that names the suffix that answered and the time wasted."""

from __future__ import annotations

from typing import Any

from kubectl_bpf.gadgets.dns import decode, lookups
from tests.unit.gadgets import dnswire

CLIENT, SERVER, NETNS = "10.0.0.2", "10.0.0.1", 77
SEARCH = ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local")


def seen(at: float, raw: bytes, *, sport: int = 40000, transport: str = "udp") -> lookups.Observed:
    message = decode.parse_message(raw)
    if message.response:
        return lookups.Observed(at, NETNS, SERVER, 53, CLIENT, sport, transport, message)
    return lookups.Observed(at, NETNS, CLIENT, sport, SERVER, 53, transport, message)


def ask(tracker: lookups.Tracker, at: float, ident: int, qname: str, *, rcode: int = 3, after: float = 0.002,
        answer: bool = False, sport: int = 40000) -> list[dict[str, Any]]:
    out = tracker.observe(seen(at, dnswire.message(ident, qname=qname), sport=sport))
    answers = (dnswire.a("192.0.2.1"),) if answer else ()
    return out + tracker.observe(seen(at + after, dnswire.message(ident, qname=qname, response=True,
                                                                  rcode=0 if answer else rcode,
                                                                  answers=answers), sport=sport))


def test_a_response_matches_its_query_by_tuple_and_id() -> None:
    tracker = lookups.Tracker(timeout_s=5, search={})
    assert tracker.observe(seen(10.0, dnswire.message(1, qname="a.test"))) == []
    # same id from another port, and another id on the same port: not its answer
    assert tracker.observe(seen(10.001, dnswire.message(1, qname="a.test", response=True), sport=40001)) == []
    assert tracker.observe(seen(10.001, dnswire.message(2, qname="a.test", response=True))) == []
    (record,) = tracker.observe(seen(10.0125, dnswire.message(1, qname="a.test", response=True,
                                                               answers=(dnswire.a("192.0.2.9"),))))
    assert (record["name"], record["rcode"], record["latency_ms"], record["retries"], record["chain"]) == (
        "a.test", "NOERROR", 12.5, 0, None)
    assert record["answers"] == [{"name": "a.test", "type": "A", "ttl": 60, "data": "192.0.2.9"}]
    assert (record["server"], record["client_ip"], record["transport"]) == (SERVER, CLIENT, "udp")
    assert tracker.unmatched_responses == 2


def test_silence_is_unanswered_after_the_timeout_with_retries_grouped() -> None:
    tracker = lookups.Tracker(timeout_s=1.0, search={})
    tracker.observe(seen(0.0, dnswire.message(5, qname="quiet.test")))
    tracker.observe(seen(1.0, dnswire.message(5, qname="quiet.test")))  # the resolver's retry
    assert tracker.expire(1.9) == []  # a second from the retry, not from the first query
    (record,) = tracker.expire(2.0)
    assert (record["rcode"], record["latency_ms"], record["retries"]) == ("UNANSWERED", None, 1)
    assert tracker.pending == 0


def test_a_retry_answered_measures_from_the_query_it_answers() -> None:
    tracker = lookups.Tracker(timeout_s=5.0, search={})
    tracker.observe(seen(0.0, dnswire.message(5, qname="slow.test")))
    tracker.observe(seen(1.0, dnswire.message(6, qname="slow.test"), sport=40002))
    (record,) = tracker.observe(seen(1.25, dnswire.message(6, qname="slow.test", response=True), sport=40002))
    assert (record["retries"], record["latency_ms"], record["id"]) == (1, 250.0, 5)


def test_search_list_tries_are_one_chain_with_the_answering_suffix() -> None:
    tracker = lookups.Tracker(timeout_s=5.0, search={NETNS: (SEARCH, 5)})
    out = ask(tracker, 0.0, 1, "web.ns.svc.cluster.local")
    out += ask(tracker, 0.010, 2, "web.svc.cluster.local", answer=True)
    assert [r["name"] for r in out] == ["web.ns.svc.cluster.local", "web.svc.cluster.local"]
    chain = out[1]["chain"]
    assert chain == {"id": 1, "base": "web", "step": 2, "steps": 2,
                     "names": ["web.ns.svc.cluster.local", "web.svc.cluster.local"],
                     "answered_by": "web.svc.cluster.local", "suffix": "svc.cluster.local",
                     "wasted_ms": 10.0, "total_ms": 12.0}
    assert out[0]["chain"]["step"] == 1 and tracker.chain_count == 1


def test_an_external_name_is_answered_as_it_is_after_every_suffix() -> None:
    tracker = lookups.Tracker(timeout_s=5.0, search={NETNS: (SEARCH, 5)})
    out: list[dict[str, Any]] = []
    for index, suffix in enumerate(SEARCH):
        out += ask(tracker, index * 0.01, index + 1, f"api.example.com.{suffix}")
    assert out == []  # held back until the chain ends
    out += ask(tracker, 0.03, 9, "api.example.com", answer=True)
    assert [r["rcode"] for r in out] == ["NXDOMAIN"] * 3 + ["NOERROR"]
    assert out[-1]["chain"]["suffix"] is None and out[-1]["chain"]["answered_by"] == "api.example.com"
    assert out[-1]["chain"]["wasted_ms"] == 30.0


def test_a_missing_name_chain_ends_when_the_candidates_run_out() -> None:
    tracker = lookups.Tracker(timeout_s=5.0, search={NETNS: (SEARCH, 5)})
    out: list[dict[str, Any]] = []
    for index, name in enumerate([f"nope.{s}" for s in SEARCH] + ["nope"]):
        out += ask(tracker, index * 0.01, index + 1, name)
    assert len(out) == 4 and out[-1]["chain"]["answered_by"] is None
    assert out[-1]["chain"]["wasted_ms"] == out[-1]["chain"]["total_ms"] == 32.0


def test_a_first_try_answer_is_no_chain() -> None:
    tracker = lookups.Tracker(timeout_s=5.0, search={NETNS: (SEARCH, 5)})
    (record,) = ask(tracker, 0.0, 1, "kubernetes.default.ns.svc.cluster.local", answer=True)
    assert record["chain"] is None and tracker.chain_count == 0


def test_a_truncated_answer_and_its_tcp_retry_stay_in_the_chain() -> None:
    tracker = lookups.Tracker(timeout_s=5.0, search={NETNS: (SEARCH, 5)})
    out = ask(tracker, 0.0, 1, "big.ns.svc.cluster.local")
    out += tracker.observe(seen(0.01, dnswire.message(2, qname="big.svc.cluster.local")))
    out += tracker.observe(seen(0.011, dnswire.message(2, qname="big.svc.cluster.local", response=True,
                                                       tc=True)))
    assert out == []
    out += tracker.observe(seen(0.02, dnswire.message(3, qname="big.svc.cluster.local"), sport=40100,
                                transport="tcp"))
    out += tracker.observe(seen(0.025, dnswire.message(3, qname="big.svc.cluster.local", response=True,
                                                       answers=(dnswire.a("192.0.2.1"),)),
                                sport=40100, transport="tcp"))
    assert [(r["transport"], r["truncated"]) for r in out] == [("udp", False), ("udp", True), ("tcp", False)]
    assert out[-1]["chain"]["suffix"] == "svc.cluster.local"


def test_tallies_count_per_name_and_server_with_percentiles() -> None:
    tracker = lookups.Tracker(timeout_s=1.0, search={})
    for index in range(100):
        ask(tracker, index, index, "n.test", answer=True, after=(index + 1) / 1000)
    tracker.observe(seen(200.0, dnswire.message(999, qname="n.test")))
    tracker.expire(202.0)
    (name,), (server,) = tracker.tallies(5)
    assert (name["key"], name["lookups"], name["unanswered"], name["p50_ms"], name["p99_ms"]) == (
        "n.test", 101, 1, 50.0, 99.0)
    assert server["key"] == f"{SERVER}:53" and server["rcodes"] == {"NOERROR": 100, "UNANSWERED": 1}


def test_resolv_conf_gives_search_and_ndots_as_glibc_reads_them() -> None:
    text = "domain old.example\nnameserver 10.96.0.10\nsearch NS.svc.cluster.local. svc.cluster.local\n" \
           "options ndots:5 timeout:1 # comment\n"
    assert lookups.parse_resolv_conf(text) == (("ns.svc.cluster.local", "svc.cluster.local"), 5)
    assert lookups.parse_resolv_conf("nameserver 1.1.1.1\n") == ((), 1)


def test_memory_is_bounded_but_counts_stay_exact(monkeypatch: Any) -> None:
    monkeypatch.setattr(lookups, "MAX_TALLIES", 3)
    monkeypatch.setattr(lookups.Tally, "MAX_SAMPLES", 50)
    tracker = lookups.Tracker(timeout_s=1.0, search={})
    for index in range(1000):
        ask(tracker, index, index, f"n{index % 10}.test", answer=True, after=0.001 * (1 + index % 100))
    names, _ = tracker.tallies(10)
    assert len(names) == 3 + 1 and sum(tally["lookups"] for tally in names) == 1000
    other = next(tally for tally in names if tally["key"] == lookups.OTHER)
    assert other["lookups"] == 1000 - 3 * 100
    assert all(len(tally.latencies) <= 50 for tally in tracker.per_name.values())
    assert other["max_ms"] == 100.0 and 20.0 <= other["p50_ms"] <= 80.0
