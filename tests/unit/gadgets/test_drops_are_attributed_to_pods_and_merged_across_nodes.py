"""Putting Kubernetes names back on kernel facts: which target pod a drop
belongs to, who the peer is, and exact totals merged from several nodes."""

from __future__ import annotations

import io

import pytest

from kubectl_bpf.gadgets.drops import cluster
from kubectl_bpf.kube import targets

WEB = targets.PodTarget("shop", "web", "uid-1", "n1", ("10.0.0.5",), ("a" * 64,), False, "Running")
API = targets.PodTarget("shop", "api", "uid-2", "n1", ("10.0.0.6",), ("b" * 64,), False, "Running")
DB = targets.PodTarget("data", "db", "uid-3", "n2", ("10.0.1.7",), ("c" * 64,), False, "Running")
GROUPS = [targets.NodeGroup("n1", (WEB, API)), targets.NodeGroup("n2", (DB,))]
PEERS = {"10.0.0.9": "shop/client", "10.0.0.5": "shop/web"}


def index() -> cluster.PodIndex:
    pods = cluster.PodIndex(GROUPS, PEERS)
    pods.learn_preflight("n1", {"target": {"containers": {"a" * 64: 4026532001, "b" * 64: 4026532002}}})
    return pods


def test_the_netns_a_drop_happened_in_names_the_pod_first() -> None:
    drop = {"type": "drop", "netns": 4026532002, "src": "10.0.0.9", "dst": "10.0.0.5", "direction": "ingress"}
    assert index().pod_of("n1", drop) == "shop/api"


def test_outside_any_target_netns_the_addresses_decide() -> None:
    pods = index()
    assert pods.pod_of("n1", {"netns": 1, "src": "10.0.0.9", "dst": "10.0.0.5"}) == "shop/web"
    assert pods.pod_of("n1", {"netns": 1, "src": "10.0.0.6", "dst": "10.9.9.9"}) == "shop/api"
    assert pods.pod_of("n1", {"netns": 1, "src": "10.9.9.8", "dst": "10.9.9.9"}) is None


def test_on_a_node_traced_for_one_pod_every_drop_is_that_pods() -> None:
    assert index().pod_of("n2", {"netns": 1, "src": "fe80::1", "dst": "ff02::2"}) == "data/db"


def test_the_peer_is_the_other_endpoint_by_name_when_known() -> None:
    pods = index()
    assert pods.peer_of({"src": "10.0.0.9", "dst": "10.0.0.5"}, "shop/web") == "shop/client"
    assert pods.peer_of({"src": "10.0.0.5", "dst": "192.0.2.1"}, "shop/web") == "192.0.2.1"


def test_json_records_gain_node_pod_and_peer_without_losing_fields() -> None:
    drop = {"v": 1, "seq": 7, "type": "drop", "netns": 4026532001, "src": "10.0.0.9", "dst": "10.0.0.5",
            "reason": "NO_SOCKET"}
    enriched = cluster.enrich(index(), "n1", drop)
    assert enriched == {**drop, "node": "n1", "pod": "shop/web", "peer": "shop/client"}
    assert cluster.enrich(index(), "n1", {"type": "stats"}) == {"type": "stats", "node": "n1"}


def test_merged_summary_adds_exact_counts_and_reasons_across_nodes() -> None:
    merged = cluster.MergedSummary()
    merged.add("n1", {"drops": 10, "events": 7, "lost": 1, "suppressed": 2, "duration_s": 5.0,
                      "reasons": {"NO_SOCKET": 6, "NETFILTER_DROP": 4}, "stopped_by": "duration",
                      "flows": [{"src": "10.0.0.9", "dst": "10.0.0.5", "count": 6}], "flow_count": 1})
    merged.add("n2", {"drops": 5, "events": 5, "lost": 0, "suppressed": 0, "duration_s": 5.2,
                      "reasons": {"NO_SOCKET": 5}, "stopped_by": "duration",
                      "flows": [{"src": "10.0.1.7", "dst": "10.0.0.9", "count": 5}], "flow_count": 1})
    totals = merged.totals()
    assert (totals["drops"], totals["events"], totals["lost"], totals["suppressed"]) == (15, 12, 1, 2)
    assert totals["reasons"] == {"NO_SOCKET": 11, "NETFILTER_DROP": 4}
    assert totals["duration_s"] == 5.2
    assert [flow["count"] for flow in totals["flows"]] == [6, 5]
    assert merged.by_peer(index()) == [("shop/web", "shop/client", 6), ("data/db", "shop/client", 5)]


def test_on_a_whole_node_any_known_pod_is_named() -> None:
    pods = cluster.PodIndex([targets.NodeGroup("n3", (), whole_node=True)], PEERS)
    assert pods.pod_of("n3", {"netns": 1, "src": "10.0.0.9", "dst": "10.9.9.9"}) == "shop/client"
    assert pods.pod_of("n3", {"netns": 1, "src": "10.9.9.8", "dst": "10.9.9.9"}) is None


def test_shown_counts_the_lines_written_not_the_agents_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood where one record was lost in transport: the agent emitted 4,
    3 reached the table, and the summary says 3 shown, 1 lost in transport."""
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    view = cluster.ClusterOutput(index(), output="table", aggregate=False)
    for seq in (2, 3, 5):  # seq 4 never arrived
        view.handle("n1", {"v": 1, "seq": seq, "type": "drop", "netns": 4026532001, "src": "10.0.0.9",
                           "dst": "10.0.0.5", "protocol": "UDP", "reason": "NO_SOCKET"})
    view.handle("n1", {"v": 1, "seq": 6, "type": "summary", "drops": 4, "events": 4, "lost": 0,
                       "suppressed": 0, "missed": 0, "unaccounted": 0, "duration_s": 1.0,
                       "reasons": {"NO_SOCKET": 4}, "flows": [], "flow_count": 0})
    view.finish()
    text = out.getvalue()
    rows = [line for line in text.splitlines() if "NO_SOCKET" in line and line.startswith("n1")]
    assert len(rows) == 3
    assert "4 drops in 1.0s: 3 shown, 0 suppressed, 0 lost, 1 lost in transport" in text


def test_ipv6_multicast_flows_are_summed_under_the_pod_their_lines_named() -> None:
    """Router solicitations fe80::x -> ff02::2 name no pod by address; the
    drop lines found the pod by netns, and the summary's flows agree."""
    pods = index()
    for netns, src in ((4026532001, "fe80::a"), (4026532002, "fe80::b")):
        drop = {"type": "drop", "netns": netns, "src": src, "dst": "ff02::2", "direction": "egress"}
        assert pods.peer_of(drop, pods.pod_of("n1", drop)) == "ff02::2"
    merged = cluster.MergedSummary()
    merged.add("n1", {"flows": [{"src": "fe80::a", "dst": "ff02::2", "count": 3},
                                {"src": "fe80::b", "dst": "ff02::2", "count": 2}]})
    assert merged.by_peer(pods) == [("shop/web", "ff02::2", 3), ("shop/api", "ff02::2", 2)]


def test_on_a_whole_node_the_peer_of_a_pod_is_never_the_pod_itself() -> None:
    """drops node/NAME: 10.88.0.2:8080 -> 10.88.0.1 (the node's bridge) is
    qa/shop's drop, and its peer is the node's address, not qa/shop again."""
    pods = cluster.PodIndex([targets.NodeGroup("vm", (), whole_node=True)], {"10.88.0.2": "qa/shop"})
    for direction in ("ingress", "egress"):
        drop = {"type": "drop", "netns": 1, "src": "10.88.0.2", "sport": 8080, "dst": "10.88.0.1",
                "direction": direction}
        enriched = cluster.enrich(pods, "vm", drop)
        assert (enriched["pod"], enriched["peer"]) == ("qa/shop", "10.88.0.1")
