"""The dns gadget seen from the cluster: each lookup named by its pod, the
search lists derived from the pod specs, and one summary merged from every
node.

Search lists: the agent reads each pod's own /etc/resolv.conf through its
container's root (what the resolver really uses). The client also derives
one from the pod spec the way the kubelet writes that file (dnsPolicy,
dnsConfig), which the agent uses for a container whose file it cannot
read. The cluster domain is the kubelet's setting, which the API does not
show: ``--cluster-domain``.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from typing import Any, Optional

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.dns import output as output_mod
from kubectl_bpf.gadgets.drops import cluster as drops_cluster
from kubectl_bpf.gadgets.drops import on_cluster
from kubectl_bpf.kube import client, errors, targets
from kubectl_bpf.protocol import spec

KUBELET_NDOTS = 5  # what the kubelet writes for the ClusterFirst policies
COUNTS = ("packets_seen", "packets_received", "packets_lost", "packets_duplicate", "packets_decoded",
          "packets_malformed", "packets_snapped", "tcp_gaps", "queries", "responses", "lookups",
          "unanswered", "unmatched_responses", "pending", "chains")


def search_of_spec(pod_spec: Any, namespace: str, cluster_domain: str) -> Optional[tuple[list[str], int]]:
    """(search suffixes, ndots) the kubelet writes into the pod's resolv.conf;
    None for dnsPolicy Default (the node's file, unknown to the client)."""
    policy = getattr(pod_spec, "dns_policy", None) or "ClusterFirst"
    host_network = bool(getattr(pod_spec, "host_network", False))
    config = getattr(pod_spec, "dns_config", None)
    if policy == "ClusterFirst" and host_network:
        policy = "Default"  # the kubelet falls back for host-network pods
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        search = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        ndots = KUBELET_NDOTS
    elif policy == "None":
        search, ndots = [], 1
    else:
        return None
    if config is not None:
        search += [name for name in (config.searches or []) if name not in search]
        for option in config.options or []:
            if option.name == "ndots" and option.value and str(option.value).isdigit():
                ndots = min(int(option.value), 15)
    return [name.lower().strip(".") for name in search], ndots


def prepare_search(cluster_domain: str) -> on_cluster.Prepare:
    """A RunSpec hook: params.search by container ID from the target pods' specs."""
    def prepare(kube: client.Kube, resolution: targets.Resolution, run_spec: spec.RunSpec) -> spec.RunSpec:
        search: dict[str, list[Any]] = {}
        for pod in resolution.pods:
            try:
                model = kube.core.read_namespaced_pod(pod.name, pod.namespace, **kube.call_options())
            except Exception as exc:  # the client library's ApiException or a transport error
                raise errors.from_api_exception(exc, f"reading pod {pod.ref} for its DNS settings") from exc
            found = search_of_spec(model.spec, pod.namespace, cluster_domain)
            if found is not None:
                search.update({container_id: [found[0], found[1]] for container_id in pod.container_ids})
        return dataclasses.replace(run_spec, params={**run_spec.params, "search": search})
    return prepare


def merge_tallies(summaries: dict[str, dict[str, Any]], field: str, limit: int) -> list[dict[str, Any]]:
    """Per name or server across nodes: exact sums. Percentiles are per node
    and cannot be merged: the largest is kept, which is what an SLO asks."""
    merged: dict[str, dict[str, Any]] = {}
    for summary in summaries.values():
        for tally in summary.get(field) or []:
            into = merged.setdefault(tally["key"], {"key": tally["key"], "lookups": 0, "queries": 0,
                                                    "rcodes": collections.Counter(), "unanswered": 0,
                                                    "p50_ms": None, "p99_ms": None})
            for count in ("lookups", "queries", "unanswered"):
                into[count] += int(tally.get(count) or 0)
            into["rcodes"].update(tally.get("rcodes") or {})
            for percentile in ("p50_ms", "p99_ms"):
                if tally.get(percentile) is not None:
                    into[percentile] = max(into[percentile] or 0.0, float(tally[percentile]))
    rows = sorted(merged.values(), key=lambda row: (-row["lookups"], row["key"]))[:limit]
    for row in rows:
        row["rcodes"] = dict(sorted(row["rcodes"].items()))
    return rows


class DnsClusterOutput(drops_cluster.ClusterOutput):
    """Renders dns records from every node: NODE and POD in front of the
    --local columns, chain lines, the merged summary at the end."""

    event_type = "dns"

    def live_columns(self, wide: bool) -> list[tuple[str, render.Formatter, int]]:
        return [column for column in output_mod.live_columns(wide) if column[0] != "CLIENT"]

    def enrich_record(self, node: str, record: dict[str, Any]) -> dict[str, Any]:
        enriched = dict(record)
        enriched["node"] = node
        if record.get("type") == self.event_type:
            pod = self._index.pod_of(node, {"netns": record.get("netns"), "src": record.get("client_ip")})
            enriched["pod"] = pod
            enriched["client"] = pod or record.get("client")
            enriched["server_name"] = self._index.name(record.get("server"))
        return enriched

    def handle(self, node: str, record: dict[str, Any]) -> None:
        super().handle(node, record)
        if not self._json and record.get("type") == self.event_type:
            line = output_mod.chain_line(record)
            if line:
                sys.stdout.write(line + "\n")

    def summary_lines(self) -> list[str]:
        nodes = self.summary.nodes
        totals: dict[str, Any] = {key: sum(int(s.get(key) or 0) for s in nodes.values()) for key in COUNTS}
        totals["duration_s"] = max((float(s.get("duration_s") or 0) for s in nodes.values()), default=0.0)
        totals["chain_wasted_ms"] = sum(float(s.get("chain_wasted_ms") or 0) for s in nodes.values())
        totals["names"] = merge_tallies(nodes, "names", drops_cluster.TOP_FLOWS)
        totals["servers"] = merge_tallies(nodes, "servers", drops_cluster.TOP_FLOWS)
        for server in totals["servers"]:
            address = server["key"].rsplit(":", 1)[0].strip("[]")
            name = self._index.name(address)
            if name and name != address:
                server["key"] = f"{server['key']} ({name})"
        lines = ["", output_mod.summary_text(totals)]
        if len(nodes) > 1:
            rows = [[node, s.get("lookups"), s.get("unanswered"), s.get("packets_seen"),
                     s.get("packets_lost")] for node, s in sorted(nodes.items())]
            lines += ["", render.table(["NODE", "LOOKUPS", "UNANSWERED", "PACKETS", "LOST"], rows)]
        return lines
