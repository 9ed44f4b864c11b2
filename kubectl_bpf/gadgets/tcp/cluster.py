"""The tcp gadget seen from the cluster: the drops gadget's merged view
(drops/cluster.ClusterOutput) with tcp rows, pods and peers named, and
one per-peer summary merged from every node.

A tcp event always happens in a socket's netns, so its pod is the target
whose netns it is (the agent filters on netns alone when it has one); the
peer is the other address, named when it is a pod the client knows. The
evidence drop was seen on the same node, which the row says.
"""

from __future__ import annotations

import collections
from typing import Any

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.drops import cluster as drops_cluster
from kubectl_bpf.gadgets.tcp import output as output_mod
from kubectl_bpf.gadgets.tcp import schema

PEER_COUNTS = ("attempts", "established", "refused", "timeouts", "unreachable", "other_failures",
               "resets_sent", "resets_received", "retransmits", "errors")


def merge_peers(summaries: dict[str, dict[str, Any]], index: drops_cluster.PodIndex,
                limit: int) -> list[dict[str, Any]]:
    """Per (pod, peer, port, direction) across nodes: exact sums of exact counts.
    Latency percentiles are per node and cannot be summed: the largest is kept."""
    merged: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for node, summary in summaries.items():
        for peer in summary.get("peers") or []:
            pod = index.pod_of(node, {"netns": peer.get("netns")}) or "-"
            name = index.name(peer.get("peer")) or "-"
            key = (pod, name, int(peer.get("port") or 0), str(peer.get("direction")))
            into = merged.setdefault(key, {"pod": pod, "peer": name, "port": key[2], "direction": key[3],
                                           **dict.fromkeys(PEER_COUNTS, 0), "resets": collections.Counter(),
                                           "latency_p50_ms": None, "latency_p99_ms": None})
            for field in PEER_COUNTS:
                into[field] += int(peer.get(field) or 0)
            into["resets"].update(peer.get("resets") or {})
            for field in ("latency_p50_ms", "latency_p99_ms"):
                if peer.get(field) is not None:
                    into[field] = max(into[field] or 0.0, float(peer[field]))
    rows = sorted(merged.values(), key=lambda row: -sum(row[field] for field in PEER_COUNTS))
    for row in rows:
        row["resets"] = dict(row["resets"])
    return rows[:limit]


class TcpClusterOutput(drops_cluster.ClusterOutput):
    """Renders tcp records from every node: NODE and POD in front of the
    --local columns, and the merged peer table at the end."""

    event_type = schema.TCP

    def live_columns(self, wide: bool) -> list[tuple[str, render.Formatter, int]]:
        return output_mod.live_columns(wide)

    def enrich_record(self, node: str, record: dict[str, Any]) -> dict[str, Any]:
        enriched = dict(record)
        enriched["node"] = node
        if record.get("type") == schema.TCP:
            pod = self._index.pod_of(node, record)
            enriched["pod"] = pod
            enriched["peer"] = self._index.name(record.get("dst"))
            if record.get("evidence"):
                enriched["evidence_node"] = node
        return enriched

    def periodic(self, node: str, record: dict[str, Any]) -> None:
        if record.get("type") == schema.PEERS:
            self._flows[node] = record
            output_mod.redraw_peers(sorted(self._flows.items()))

    def summary_lines(self) -> list[str]:
        nodes = self.summary.nodes
        totals: dict[str, Any] = {key: sum(int(s.get(key) or 0) for s in nodes.values())
                                  for key in (*drops_cluster.MergedSummary.COUNTS, "seen")}
        totals["duration_s"] = max((float(s.get("duration_s") or 0) for s in nodes.values()), default=0.0)
        by_kind: collections.Counter[str] = collections.Counter()
        reasons: collections.Counter[str] = collections.Counter()
        for summary in nodes.values():
            by_kind.update(summary.get("events_by_kind") or {})
            reasons.update(summary.get("reasons") or {})
        totals.update(events_by_kind=dict(by_kind.most_common()), reasons=dict(reasons.most_common()),
                      evidence=any(s.get("evidence") for s in nodes.values()), peers=[])
        lines = ["", output_mod.summary_text(totals)]
        peers = merge_peers(nodes, self._index, drops_cluster.TOP_FLOWS)
        if peers:
            headers = ["POD", "PEER", "DIR", "ATTEMPTS", "OK", "REFUSED", "TIMEOUT", "RESETS", "RETRANS"]
            rows = [[row["pod"], f"{row['peer']}:{row['port']}", row["direction"], row["attempts"],
                     row["established"], row["refused"], row["timeouts"],
                     row["resets_sent"] + row["resets_received"], row["retransmits"]] for row in peers]
            lines += ["", render.table(headers, rows)]
        if len(nodes) > 1:
            rows = [[node, s.get("seen"), s.get("events"), s.get("lost"), s.get("suppressed")]
                    for node, s in sorted(nodes.items())]
            lines += ["", render.table(["NODE", "TCP EVENTS", "SHOWN", "LOST", "SUPPRESSED"], rows)]
        return lines
