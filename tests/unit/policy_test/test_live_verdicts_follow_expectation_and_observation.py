"""Live policy-test: probe records become verdicts, evidence and exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_bpf.gadgets.policy_test import evaluate, exitcodes, inventory, live_output, live_plan
from kubectl_bpf.protocol import exitcodes as shared

INV = inventory.parse_objects([{"kind": "List", "items": [
    {"kind": "Pod", "metadata": {"name": "a", "namespace": "x"}, "spec": {"nodeName": "n1"},
     "status": {"phase": "Running", "podIP": "10.0.0.1"}},
    {"kind": "Pod", "metadata": {"name": "b", "namespace": "x"}, "spec": {"nodeName": "n1"},
     "status": {"phase": "Running", "podIP": "10.0.0.2"}},
]}])
A, B = INV.pods
DST_NETNS = 4026532986


def planned(expected: str, *, declared: Any = None, skip: str | None = None) -> live_plan.PlannedProbe:
    return live_plan.PlannedProbe(
        id="p0", source=A, destination=live_plan.pod_destination(B), port=8080, protocol="TCP",
        computed=evaluate.Verdict(expected, ("x/allow ingress[0]",)),  # type: ignore[arg-type]
        declared=declared, skip=skip)


def attempt(outcome: str, number: int = 1, *, arrived: bool = False,
            evidence: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "probe", "id": "p0", "attempt": number, "outcome": outcome, "arrived": arrived,
            "rtt_ms": 0.4 if outcome == "CONNECTED" else None, "error": None, "evidence": evidence or []}


NFT_DROP = {"reason": "NETFILTER_DROP", "location": "nft_do_chain+0x3e8", "ifname": "eth0",
            "netns": DST_NETNS, "direction": "forward", "count": 2, "time": "t"}


def judge(probe: live_plan.PlannedProbe, *attempts: dict[str, Any]) -> live_plan.Result:
    return live_plan.classify(probe, attempts, node="n1", netns_names={DST_NETNS: "x/b"},
                              expected_attempts=len(attempts))


@pytest.mark.parametrize(("expected", "outcomes", "verdict"), [
    ("allow", ["CONNECTED"] * 3, "PASS"),
    ("allow", ["DELIVERED"] * 3, "PASS"),
    ("deny", ["TIMEOUT", "REFUSED", "TIMEOUT"], "PASS"),
    ("allow", ["TIMEOUT"] * 3, "UNEXPECTED-DENY"),
    ("deny", ["CONNECTED"] * 3, "UNEXPECTED-ALLOW"),
    ("allow", ["CONNECTED", "TIMEOUT", "CONNECTED"], "FLAKY"),
    ("undefined", ["CONNECTED", "TIMEOUT"], "UNDEFINED"),
    ("allow", ["ERROR", "ERROR"], "ERROR"),
])
def test_verdict_follows_expectation_and_every_attempt(expected: str, outcomes: list[str],
                                                       verdict: str) -> None:
    result = judge(planned(expected), *(attempt(o, n) for n, o in enumerate(outcomes, start=1)))
    assert result.verdict == verdict


def test_a_closed_port_is_reachable_not_a_failure() -> None:
    result = judge(planned("allow"), attempt("REFUSED", arrived=True), attempt("REFUSED", 2, arrived=True))
    assert result.verdict == "PASS"
    assert result.observed == "REFUSED(port closed) x2"


def test_a_refusal_on_the_way_is_blocked() -> None:
    assert judge(planned("allow"), attempt("REFUSED")).verdict == "UNEXPECTED-DENY"


def test_unexpected_deny_names_reason_location_and_pod_of_the_drop() -> None:
    result = judge(planned("allow"), attempt("TIMEOUT", evidence=[NFT_DROP]),
                   attempt("TIMEOUT", 2, evidence=[NFT_DROP]))
    assert result.where == ("NETFILTER_DROP at nft_do_chain+0x3e8 in x/b eth0 on n1 (forward, x4)",)


def test_unexpected_allow_says_what_got_through() -> None:
    result = judge(planned("deny"), attempt("CONNECTED"))
    assert result.where[0].startswith("connected in 0.4 ms")


def test_a_declared_expectation_that_differs_is_an_intent_mismatch() -> None:
    result = judge(planned("allow", declared="deny"), attempt("CONNECTED"))
    assert result.verdict == "INTENT-MISMATCH"
    assert "declared deny" in result.where[0]


def test_missing_attempts_are_reported_not_judged_as_pass() -> None:
    result = live_plan.classify(planned("allow"), [attempt("CONNECTED")], node="n1", netns_names={},
                                expected_attempts=3)
    assert result.verdict == "PASS"
    assert "2 attempt(s) never reported" in result.where[-1]


def test_skipped_probes_are_undefined_with_the_reason() -> None:
    result = judge(planned("undefined", skip="a pod's traffic to itself is not probed"))
    assert (result.verdict, result.where) == ("UNDEFINED", ("a pod's traffic to itself is not probed",))


@pytest.mark.parametrize(("verdicts", "code"), [
    ([], shared.OK),
    (["PASS", "UNDEFINED"], shared.OK),
    (["PASS", "ERROR"], shared.FAILURE),
    (["UNEXPECTED-ALLOW", "INTENT-MISMATCH", "ERROR"], exitcodes.UNEXPECTED_ALLOW),
    (["INTENT-MISMATCH", "UNEXPECTED-DENY"], exitcodes.UNEXPECTED_DENY),
    (["INTENT-MISMATCH"], exitcodes.INTENT_MISMATCH),
])
def test_exit_code_is_the_lowest_verdict_code(verdicts: list[str], code: int) -> None:
    results = [live_plan.Result(planned("allow"), v, "-", (), (), "n1") for v in verdicts]  # type: ignore[arg-type]
    assert live_plan.exit_code(results) == code


def test_junit_has_a_failure_per_failing_probe() -> None:
    results = [judge(planned("allow"), attempt("TIMEOUT", evidence=[NFT_DROP])),
               judge(planned("allow"), attempt("CONNECTED"))]
    xml = live_output.render_junit(results, wall_s=1.0)
    assert 'tests="2" failures="1"' in xml
    assert '<failure message="UNEXPECTED-DENY"' in xml


def test_matrix_marks_unprobed_cells() -> None:
    probe = planned("undefined", skip="self")
    text = live_output.render_matrices([live_plan.Result(probe, "UNDEFINED", "-", (), (), None)])
    assert text.splitlines()[2].split() == ["x/a", "."]


# -- evidence from the destination's node --------------------------------------------------------

DST_NODE_NETNS = 4026532001  # on n2: may equal an inode on n1, another kernel's numbering
SOURCE_NODES = {"p0": "n1"}


def sent(outcome: str, socket_result: str, *, protocol: str = "TCP", sport: int = 61001,
         time: str = "2026-12-02T16:00:00.000100Z") -> dict[str, Any]:
    return {**attempt(outcome), "protocol": protocol, "src": "10.0.0.1", "sport": sport, "dst": "10.0.1.2",
            "dport": 8080, "src_netns": DST_NODE_NETNS, "socket_result": socket_result, "time": time}


def drop_on_n2(reason: str, *, sport: int = 61001, reply: bool = False, protocol: str = "TCP",
               time: str = "2026-12-02T16:00:00.000300Z") -> dict[str, Any]:
    flow = {"src": "10.0.0.1", "sport": sport, "dst": "10.0.1.2", "dport": 8080}
    if reply:
        flow = {"src": "10.0.1.2", "sport": 8080, "dst": "10.0.0.1", "dport": sport}
    return {"type": "drop", "reason": reason, "location": "nft_do_chain+0x3e8" if reason != "NO_SOCKET"
            else "__udp4_lib_rcv+0x4bc", "ifname": "eth0", "netns": DST_NODE_NETNS, "protocol": protocol,
            "time": time, **flow}


def test_a_cross_node_deny_names_the_drop_site_and_the_destination_node() -> None:
    attempts = {"p0": [sent("TIMEOUT", "timeout")]}
    matched = live_plan.add_destination_evidence(attempts, [
        ("n2", drop_on_n2("NETFILTER_DROP")), ("n2", drop_on_n2("NETFILTER_DROP")),  # a retransmitted SYN
        ("n2", drop_on_n2("NETFILTER_DROP", sport=61002)),  # another flow
        ("n2", drop_on_n2("NETFILTER_DROP", time="2026-12-02T15:59:59.000000Z")),  # before the attempt
        ("n1", drop_on_n2("NETFILTER_DROP"))], SOURCE_NODES)  # the source's node: its agent's evidence
    assert matched == 2
    result = live_plan.classify(planned("allow"), attempts["p0"], node="n1", netns_names={},
                                node_netns_names={"n2": {DST_NODE_NETNS: "x/b"}}, expected_attempts=1)
    assert result.verdict == "UNEXPECTED-DENY"
    assert result.where == ("NETFILTER_DROP at nft_do_chain+0x3e8 in x/b eth0 on n2 (forward, x2)",)


def test_a_no_socket_drop_on_the_destination_node_proves_arrival() -> None:
    attempts = {"p0": [sent("TIMEOUT", "timeout", protocol="UDP")]}
    live_plan.add_destination_evidence(attempts, [("n2", drop_on_n2("NO_SOCKET", protocol="UDP"))],
                                       SOURCE_NODES)
    assert attempts["p0"][0]["outcome"] == "DELIVERED" and attempts["p0"][0]["arrived"]
    result = live_plan.classify(planned("allow"), attempts["p0"], node="n1", netns_names={},
                                expected_attempts=1)
    assert result.verdict == "PASS"


def test_a_reply_dropped_on_the_destination_node_is_reply_evidence() -> None:
    attempts = {"p0": [sent("TIMEOUT", "timeout")]}
    live_plan.add_destination_evidence(attempts, [("n2", drop_on_n2("NETFILTER_DROP", reply=True))],
                                       SOURCE_NODES)
    (item,) = attempts["p0"][0]["evidence"]
    assert item["direction"] == "reply" and item["node"] == "n2"
    assert attempts["p0"][0]["outcome"] == "TIMEOUT"
