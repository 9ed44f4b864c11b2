"""Counts are exact: every matching drop is an event, lost or suppressed,
and the kernel's tallies agree with what was sent."""

from __future__ import annotations

import pytest

from tests.agent.conftest import TARGET_V4

pytestmark = pytest.mark.agent


def assert_accounted(summary: dict) -> None:
    assert summary["drops"] == summary["events"] + summary["lost"] + summary["suppressed"]
    assert summary["unaccounted"] == 0


def test_send_n_see_n(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path, "--reason", "NO_SOCKET")
    client.traffic("udp", TARGET_V4, "7201", "300")
    tracer.settle()
    tracer.stop()
    assert len(tracer.drops(dport=7201)) == 300
    assert tracer.summary["reasons"] == {"NO_SOCKET": 300}
    assert tracer.summary["flows"][0]["count"] == 300
    assert_accounted(tracer.summary)


def test_flood_into_a_tiny_ring_loses_events_but_counts_every_drop(pair, trace):
    _, target = pair
    tracer = trace("--netns", target.path, "--reason", "NO_SOCKET", "--ring-kib", "4")
    target.traffic("udp", TARGET_V4, "7202", "20000")
    tracer.settle(1.0)
    tracer.stop()
    summary = tracer.summary
    assert summary["drops"] == 20000
    assert summary["lost"] > 0
    assert summary["events"] == len(tracer.drops(dport=7202))
    assert_accounted(summary)


def test_rate_limit_suppresses_events_not_counts(pair, trace):
    _, target = pair
    tracer = trace("--netns", target.path, "--reason", "NO_SOCKET", "--rate-limit", "50")
    target.traffic("udp", TARGET_V4, "7203", "2000")
    tracer.settle()
    tracer.stop()
    summary = tracer.summary
    assert summary["drops"] == 2000
    assert 0 < summary["events"] <= 200  # one second of burst per CPU, plus refill
    assert summary["suppressed"] >= 1800
    assert_accounted(summary)


def test_aggregate_counts_flows_exactly_without_events(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path, "--aggregate", "--interval", "0.2", "--reason", "NO_SOCKET")
    client.traffic("udp", TARGET_V4, "7204", "1500")
    target.traffic("udp", TARGET_V4, "7205", "500")
    tracer.settle()
    tracer.stop()
    assert not tracer.drops()
    flows = {(f["dst"], f["dport"]): f["count"] for f in tracer.of_type("flows")[-1]["flows"]}
    assert flows == {(TARGET_V4, 7204): 1500, (TARGET_V4, 7205): 500}
    assert tracer.summary["drops"] == tracer.summary["suppressed"] == 2000
    assert_accounted(tracer.summary)


def test_count_stops_after_n_lines_and_still_summarizes(pair, trace):
    client, target = pair
    tracer = trace("--netns", target.path, "--reason", "NO_SOCKET", "--count", "5")
    client.traffic("udp", TARGET_V4, "7206", "20")
    assert tracer.finish() == 0
    assert len(tracer.drops()) == 5
    assert tracer.records[-1] == {**tracer.records[-1], "type": "end", "status": "ok"}
    assert tracer.summary["events"] == 5
    assert tracer.summary["stopped_by"] == "count"
    assert_accounted(tracer.summary)
