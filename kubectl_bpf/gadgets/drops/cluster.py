"""The drops gadget seen from the cluster: which pod each drop belongs to,
who the peer is, and one summary merged from every node.

The agent knows only kernel facts (netns inodes, addresses); this module puts
the Kubernetes names back. A drop belongs to the target pod whose netns it
was dropped in, else to the pod whose IP it was addressed to, else to the pod
that sent it (a policy drop on the host side of a veth); on a node traced
for one pod only, everything the agent reports belongs to that pod.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from typing import Any, Optional, Sequence

import click

from kubectl_bpf import protocol
from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.drops import modes, schema
from kubectl_bpf.gadgets.drops import output as output_mod
from kubectl_bpf.kube import session, targets
from kubectl_bpf.protocol import records

TOP_FLOWS = 20  # enough for a terminal, and exact: the counts come from the kernel's flow map
FLUSH_PERIOD_S = 0.1  # a live view may lag this much behind a busy stream, never more
# -o json re-encodes every record (with node, pod, peer added): skip the circular-reference
# walk and ASCII escaping, which the agent's own records never need.
JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


class PodIndex:
    """Names for addresses and namespaces: the targets first, then any pod
    the user may list (``peers``), else the bare address."""

    def __init__(self, groups: Sequence[targets.NodeGroup], peers: dict[str, str]) -> None:
        self._target_ips: dict[str, str] = {}
        self._containers: dict[str, str] = {}
        self._sole_pod = {group.node: f"{group.pods[0].namespace}/{group.pods[0].name}"
                          for group in groups if len(group.pods) == 1 and not group.whole_node}
        for group in groups:
            for pod in group.pods:
                name = f"{pod.namespace}/{pod.name}"
                self._target_ips.update(dict.fromkeys(pod.ips, name))
                self._containers.update(dict.fromkeys(pod.container_ids, name))
        self._names = {**peers, **self._target_ips}
        self._peers = peers
        self._whole_nodes = {group.node for group in groups if group.whole_node}
        self._netns: dict[tuple[str, int], str] = {}
        self._by_endpoints: dict[tuple[str, str, str], str] = {}  # (node, src, dst) -> pod, from netns
        self._peer_by_endpoints: dict[tuple[str, str], str] = {}  # (src, dst) -> peer, from drop lines

    def learn_preflight(self, node: str, record: dict[str, Any]) -> None:
        """The agent reports the netns of every container it resolved."""
        containers = (record.get("target") or {}).get("containers") or {}
        for container_id, inode in containers.items():
            pod = self._containers.get(container_id)
            if pod is not None:
                self._netns[(node, int(inode))] = pod

    def pod_of(self, node: str, record: dict[str, Any]) -> Optional[str]:
        """The pod by netns, else by address, else the pod an earlier drop
        with the same endpoints was attributed to by netns: the kernel's flow
        counts carry no netns, and a link-local to multicast flow (IPv6 router
        solicitations) names no pod by its addresses."""
        endpoints = (node, str(record.get("src")), str(record.get("dst")))
        by_netns = self._netns.get((node, int(record.get("netns") or 0)))
        if by_netns is not None:
            self._by_endpoints[endpoints] = by_netns
            return by_netns
        by_address = (self._target_ips.get(str(record.get("dst")))
                      or self._target_ips.get(str(record.get("src"))))
        if by_address is None and node in self._whole_nodes:  # every pod of the node is a target
            by_address = self._peers.get(str(record.get("dst"))) or self._peers.get(str(record.get("src")))
        return by_address or self._by_endpoints.get(endpoints) or self._sole_pod.get(node)

    def name(self, address: Optional[str]) -> Optional[str]:
        if address is None:
            return None
        return self._names.get(address, address)

    def peer_of(self, record: dict[str, Any], pod: Optional[str]) -> Optional[str]:
        """The endpoint that is not the pod: the other side of the conversation."""
        src, dst = record.get("src"), record.get("dst")
        # By every name known, not only the targets': on node/NAME there are no
        # target IPs, and the pod's own address came back as its "peer".
        if pod is not None and self._names.get(str(dst)) == pod:
            return self.name(src)
        if pod is not None and self._names.get(str(src)) == pod:
            return self.name(dst)
        if "direction" not in record:  # a flow count: the side its drop lines showed
            remembered = self._peer_by_endpoints.get((str(src), str(dst)))
            if remembered is not None:
                return remembered
        peer = self.name(dst if record.get("direction") == "egress" else src)
        self._peer_by_endpoints[(str(src), str(dst))] = peer or "-"
        return peer


def enrich(index: PodIndex, node: str, record: dict[str, Any]) -> dict[str, Any]:
    """The agent's record with ``node``, ``pod`` and ``peer`` added (-o json)."""
    enriched = dict(record)
    enriched["node"] = node
    if record.get("type") == schema.DROP:
        pod = index.pod_of(node, record)
        enriched["pod"] = pod
        enriched["peer"] = index.peer_of(record, pod)
    return enriched


class MergedSummary:
    """Exact totals across nodes: every count is a sum of exact counts."""

    COUNTS = ("drops", "events", "lost", "suppressed", "missed", "unaccounted")

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, node: str, summary: dict[str, Any]) -> None:
        self.nodes[node] = summary

    def totals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {key: sum(int(s.get(key) or 0) for s in self.nodes.values())
                                  for key in self.COUNTS}
        merged["duration_s"] = max((float(s.get("duration_s") or 0) for s in self.nodes.values()),
                                   default=0.0)
        reasons: collections.Counter[str] = collections.Counter()
        for summary in self.nodes.values():
            reasons.update(summary.get("reasons") or {})
        merged["reasons"] = dict(reasons.most_common())
        flows = [flow for summary in self.nodes.values() for flow in summary.get("flows") or []]
        flows.sort(key=lambda flow: -int(flow.get("count") or 0))
        merged["flows"] = flows[:TOP_FLOWS]
        merged["flow_count"] = sum(int(s.get("flow_count") or 0) for s in self.nodes.values())
        node_modes = [s.get("mode") for s in self.nodes.values()]
        if node_modes and all(mode == node_modes[0] for mode in node_modes):
            merged["mode"] = node_modes[0]  # nodes in different modes: each node's own summary says
        return merged

    def by_peer(self, index: PodIndex) -> list[tuple[str, str, int]]:
        """(pod, peer, drops) from the kernel's flow counts, largest first."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for node, summary in self.nodes.items():
            for flow in summary.get("flows") or []:
                record = {"src": flow.get("src"), "dst": flow.get("dst")}
                pod = index.pod_of(node, record)
                peer = index.peer_of(record, pod)
                counts[(pod or "-", peer or "-")] += int(flow.get("count") or 0)
        return [(pod, peer, count) for (pod, peer), count in counts.most_common()]


class ClusterOutput:
    """Renders the merged stream: a live table with NODE and POD in front, or
    the agents' JSON lines with node, pod and peer added; the merged summary
    at the end. Progress goes to stderr, data to stdout.

    Another gadget reuses it by overriding ``event_type``, ``live_columns``,
    ``enrich_record``, ``periodic`` and ``summary_lines``."""

    event_type = schema.DROP

    def __init__(self, index: PodIndex, *, output: str, aggregate: bool) -> None:
        self._index = index
        self._json = output == "json"
        self._aggregate = aggregate
        prefix: list[tuple[str, render.Formatter, int]] = [
            ("NODE", lambda r: str(r.get("node")), 8), ("POD", lambda r: render.cell(r.get("pod")), 20)]
        # NODE goes after the location and before the time: kubectl get pods -o wide has it, not the default.
        self._live = render.LiveTable(prefix + self.live_columns(output == "wide"), sys.stdout,
                                      fit=output != "wide", optional=("LOCATION", "NODE", "TIME"))
        self._flows: dict[str, dict[str, Any]] = {}
        self._flows_view = render.Redraw(sys.stdout)  # --aggregate tables, redrawn in place
        self.summary = MergedSummary()
        self._flushed_at = 0.0
        self._shown: dict[str, int] = {}  # event records actually written, per node
        self._last_seq: dict[str, int] = {}  # per node: the seq the client's own records continue

    def live_columns(self, wide: bool) -> list[tuple[str, render.Formatter, int]]:
        return output_mod.live_columns(wide)

    def enrich_record(self, node: str, record: dict[str, Any]) -> dict[str, Any]:
        return enrich(self._index, node, record)

    def periodic(self, node: str, record: dict[str, Any]) -> None:
        """A periodic table record (--aggregate): redraw every node's."""
        if record.get("type") == schema.FLOWS:
            self._flows[node] = record
            self._flows_view.show(output_mod.flows_text(sorted(self._flows.items())))

    def handle(self, node: str, record: dict[str, Any]) -> None:
        record_type = record.get("type")
        self._last_seq[node] = int(record.get("seq") or 0)
        if record_type == records.PREFLIGHT:
            self._index.learn_preflight(node, record)
        enriched = self.enrich_record(node, record)
        if record_type == records.SUMMARY:
            self.summary.add(node, record)
        if record_type == self.event_type:
            self._shown[node] = self._shown.get(node, 0) + 1
        if self._json:
            sys.stdout.write(JSON_ENCODER.encode(enriched) + "\n")
        elif record_type == self.event_type:
            self._live.row(enriched)
        else:
            self._progress(node, record)
        if time.monotonic() - self._flushed_at > FLUSH_PERIOD_S:
            self.flush()

    def finished(self, item: session.NodeFinished) -> None:
        """A node's stream is over. JSON readers rely on ``end`` being last:
        when the agent's never came (the log could not be read again, the pod
        was killed), the client's own diagnosis follows as an ``error`` and an
        ``end`` record, marked ``origin: client``."""
        if not self._json or item.ended or item.error is None:
            return
        seq = self._last_seq.get(item.node, 0)
        common = {"v": protocol.PROTOCOL_VERSION, "node": item.node, "origin": "client"}
        for record in ({**common, "seq": seq + 1, "type": records.ERROR, "message": item.error,
                        "exit_code": item.exit_code},
                       {**common, "seq": seq + 2, "type": records.END, "status": "error",
                        "exit_code": item.exit_code}):
            sys.stdout.write(JSON_ENCODER.encode(record) + "\n")
        self.flush()

    def flush(self) -> None:
        """Called when the stream goes idle, and every FLUSH_PERIOD_S under load:
        one write per record was a third of the client's CPU under a flood."""
        sys.stdout.flush()
        self._flushed_at = time.monotonic()

    def _progress(self, node: str, record: dict[str, Any]) -> None:
        record_type = record.get("type")
        if record_type == records.PREFLIGHT:
            mode = record.get("mode") or {}
            click.echo(f"{node}: agent {record.get('agent_version')} on kernel {record.get('kernel')}, "
                       f"hook {record.get('hook')}" + (f", {modes.label(mode)}" if mode else ""),
                       err=True)
            for line in mode.get("degraded", []):
                click.echo(f"{node}: note: {line}", err=True)
        elif record_type == records.READY:
            click.echo(f"{node}: tracing (BPF program id {record.get('prog_id')}); Ctrl-C to stop", err=True)
            if not self._aggregate:
                self._live.header()
        elif record_type == records.ERROR:  # before periodic(), which would swallow it
            click.echo(f"kubectl-bpf: error: {node}: {record.get('message')}", err=True)
        elif record_type not in (records.STATS, records.SUMMARY, records.END):
            self.periodic(node, record)

    def finish(self) -> None:
        """The merged summary (tables only: JSON readers have every node's summary record)."""
        if self._json or not self.summary.nodes:
            return
        sys.stdout.write("\n".join(self.summary_lines()) + "\n")
        sys.stdout.flush()

    def summary_lines(self) -> list[str]:
        totals = self.summary.totals()
        # "shown" is what this client wrote: the agents' event count includes
        # records lost in transport (a log rotated before it was read).
        shown = sum(self._shown.get(node, 0) for node in self.summary.nodes)
        totals["transport_lost"] = max(0, totals["events"] - shown)
        totals["events"] = shown
        lines = ["", output_mod.summary_text(totals)]
        peers = self.summary.by_peer(self._index)
        if peers:
            lines += ["", render.table(["POD", "PEER", "DROPS"], [list(row) for row in peers[:TOP_FLOWS]])]
        if len(self.summary.nodes) > 1:
            rows = [[node, s.get("drops"), self._shown.get(node, 0), s.get("lost"), s.get("suppressed")]
                    for node, s in sorted(self.summary.nodes.items())]
            lines += ["", render.table(["NODE", "DROPS", "SHOWN", "LOST", "SUPPRESSED"], rows)]
        return lines
