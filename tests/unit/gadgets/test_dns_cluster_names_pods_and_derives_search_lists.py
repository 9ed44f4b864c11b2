"""The dns gadget on a cluster: search lists derived from pod specs as the
kubelet writes them, lookups named by pod, tallies merged across nodes, and
what people see (lookup rows, the chain line, the summary)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from kubectl_bpf.gadgets.dns import cluster, output
from kubectl_bpf.gadgets.drops import cluster as drops_cluster
from kubectl_bpf.kube import targets
from kubectl_bpf.protocol import spec

WEB = targets.PodTarget("shop", "web", "uid-1", "n1", ("10.0.0.5",), ("a" * 64,), False, "Running")


def pod_spec(**fields: Any) -> Any:
    config = fields.pop("dns_config", None)
    if config is not None:
        config = types.SimpleNamespace(searches=config.get("searches"), options=[
            types.SimpleNamespace(name=name, value=value) for name, value in config.get("options", [])])
    return types.SimpleNamespace(dns_policy=fields.get("dns_policy"), host_network=fields.get("host_network"),
                                 dns_config=config)


def test_cluster_first_gives_the_namespace_search_list_and_ndots_5() -> None:
    assert cluster.search_of_spec(pod_spec(), "shop", "cluster.local") == (
        ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"], 5)


def test_dns_config_adds_searches_and_overrides_ndots() -> None:
    found = cluster.search_of_spec(pod_spec(dns_config={"searches": ["corp.example."], "options": [
        ("ndots", "2"), ("timeout", "1")]}), "shop", "k8s.internal")
    assert found == (["shop.svc.k8s.internal", "svc.k8s.internal", "k8s.internal", "corp.example"], 2)


def test_policy_none_uses_only_dns_config_and_default_is_unknown() -> None:
    assert cluster.search_of_spec(pod_spec(dns_policy="None", dns_config={"searches": ["a.example"]}),
                                  "shop", "cluster.local") == (["a.example"], 1)
    assert cluster.search_of_spec(pod_spec(dns_policy="Default"), "shop", "cluster.local") is None
    # a host-network pod with ClusterFirst gets the node's file, as the kubelet does
    assert cluster.search_of_spec(pod_spec(host_network=True), "shop", "cluster.local") is None
    assert cluster.search_of_spec(pod_spec(dns_policy="ClusterFirstWithHostNet", host_network=True),
                                  "shop", "cluster.local") is not None


class FakeCore:
    def read_namespaced_pod(self, name: str, namespace: str, **_call: Any) -> Any:
        assert (name, namespace) == ("web", "shop")
        return types.SimpleNamespace(spec=pod_spec())


def test_prepare_puts_the_search_list_in_the_run_spec_by_container() -> None:
    kube = types.SimpleNamespace(core=FakeCore(), call_options=lambda: {})
    resolution = targets.Resolution(groups=(targets.NodeGroup("n1", (WEB,)),), warnings=())
    prepared = cluster.prepare_search("cluster.local")(kube, resolution,  # type: ignore[arg-type]
                                                       spec.RunSpec(gadget="dns", params={"timeout_s": 5}))
    assert prepared.params == {"timeout_s": 5, "search": {
        "a" * 64: [["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"], 5]}}


def test_tallies_merge_exactly_and_keep_the_worst_percentile() -> None:
    summaries = {
        "n1": {"names": [{"key": "a.test", "lookups": 3, "queries": 4, "rcodes": {"NOERROR": 3},
                          "unanswered": 0, "p50_ms": 1.0, "p99_ms": 9.0}]},
        "n2": {"names": [{"key": "a.test", "lookups": 2, "queries": 2,
                          "rcodes": {"NOERROR": 1, "UNANSWERED": 1}, "unanswered": 1,
                          "p50_ms": 2.0, "p99_ms": 3.0}]}}
    (merged,) = cluster.merge_tallies(summaries, "names", 10)
    assert merged == {"key": "a.test", "lookups": 5, "queries": 6, "rcodes": {"NOERROR": 4, "UNANSWERED": 1},
                      "unanswered": 1, "p50_ms": 2.0, "p99_ms": 9.0}


LOOKUP = {"type": "dns", "time": "2026-12-02T15:00:00.000100Z", "id": 1, "name": "web.shop", "qtype": "A",
          "rcode": "NOERROR", "latency_ms": 1.25, "server": "10.96.0.10", "server_port": 53,
          "client": "10.0.0.5", "client_ip": "10.0.0.5", "client_port": 40000, "netns": 4026532001,
          "transport": "udp", "retries": 0, "truncated": False, "partial": False,
          "answers": [{"name": "web.shop.svc.cluster.local", "type": "A", "ttl": 5, "data": "10.96.3.4"}],
          "chain": {"id": 2, "base": "web.shop", "step": 2, "steps": 2, "suffix": "svc.cluster.local",
                    "answered_by": "web.shop.svc.cluster.local", "wasted_ms": 1.5, "total_ms": 2.75,
                    "names": ["web.shop.shop.svc.cluster.local", "web.shop.svc.cluster.local"]}}


def test_cluster_rows_name_the_pod_and_end_chains_with_their_cost(capsys: pytest.CaptureFixture[str]) -> None:
    index = drops_cluster.PodIndex([targets.NodeGroup("n1", (WEB,))], {"10.96.0.10": "kube-system/kube-dns"})
    index.learn_preflight("n1", {"target": {"containers": {"a" * 64: 4026532001}}})
    view = cluster.DnsClusterOutput(index, output="json", aggregate=False)
    assert view.enrich_record("n1", LOOKUP)["pod"] == "shop/web"
    assert view.enrich_record("n1", LOOKUP)["server_name"] == "kube-system/kube-dns"
    table = cluster.DnsClusterOutput(index, output="table", aggregate=False)
    table.handle("n1", {"type": "ready", "prog_id": 1})
    table.handle("n1", LOOKUP)
    table.flush()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "POD", "TIME"]
    assert lines[1].split()[:8] == ["n1", "shop/web", "15:00:00.000100", "10.96.0.10", "udp", "A", "web.shop",
                                    "NOERROR"]
    assert "10.96.3.4" in lines[1] and "1.2ms" in lines[1]
    assert lines[2] == ("  chain #2 A web.shop: 2 tries, answered with search suffix svc.cluster.local, "
                        "1.5 ms wasted of 2.8 ms")


def test_live_cells_show_retries_tc_answers_and_non_default_ports() -> None:
    record = {**LOOKUP, "retries": 2, "truncated": True, "server": "fd00::1", "server_port": 5353,
              "answers": [{"type": "A", "data": f"192.0.2.{i}"} for i in range(5)]}
    assert output.rcode_cell(record) == "NOERROR TC (+2 retries)"
    assert output.server_cell(record) == "[fd00::1]:5353"
    assert output.answers_cell(record) == "192.0.2.0,192.0.2.1,192.0.2.2,+2"
    assert output.latency_cell({**record, "latency_ms": None}) == "-"
    assert output.chain_line({**LOOKUP, "chain": {**LOOKUP["chain"], "step": 1}}) is None


def test_summary_text_states_exact_packet_counts() -> None:
    text = output.summary_text({"lookups": 3, "queries": 4, "responses": 2, "duration_s": 1.0,
                                "unanswered": 1, "chains": 1, "chain_wasted_ms": 2.5, "pending": 0,
                                "packets_seen": 9,
                                "packets_decoded": 6, "packets_malformed": 1, "packets_lost": 0,
                                "names": [], "servers": []})
    assert text.splitlines() == ["3 lookups (4 queries, 2 responses) in 1.0s: 1 unanswered, 1 search chains "
                                 "wasting 2.5 ms", "packets: 9 seen, 6 decoded, 1 malformed, 0 lost"]
