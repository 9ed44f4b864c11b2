"""How tcp records look to people: live rows with a one-cell explanation,
the per-peer table, the summary. Shared by ``--local`` and the cluster
mode, which adds NODE and POD columns in front.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.drops import output as drops_output
from kubectl_bpf.gadgets.tcp import schema
from kubectl_bpf.protocol import records


def _ms(value: float) -> str:
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.1f}ms" if value >= 1 else f"{value:.3f}ms"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def evidence_text(evidence: Optional[dict[str, Any]], node: Optional[str] = None) -> str:
    """``SYN dropped: NETFILTER_DROP at nft_do_chain+0x3e8`` (x N, on NODE)."""
    if not evidence:
        return ""
    text = f"{evidence['packet']} dropped: {evidence['reason']} at {evidence['location']}"
    extras = [f"x{evidence['count']}"] if int(evidence.get("count") or 1) > 1 else []
    if node:
        extras.append(f"on {node}")
    return text + (f" ({', '.join(extras)})" if extras else "")


def detail(record: dict[str, Any]) -> str:
    """What happened, in one cell: timing, counts, the reason, the evidence."""
    event = record.get("event")
    parts: list[str] = []
    latency, retransmits = record.get("latency_ms"), int(record.get("retransmits") or 0)
    if event in {"CONNECTED", "ACCEPTED"}:
        if latency is not None:
            parts.append(_ms(latency))
        if retransmits:
            parts.append(f"after {_count(retransmits, 'SYN retransmit')}")
    elif event in schema.CONNECT_FAILURES:
        if event == "TIMEOUT" or retransmits:
            parts.append(_count(retransmits + 1, "SYN"))
        if latency is not None:
            parts.append(("gave up after " if event in ("TIMEOUT", "ABORTED") else "in ") + _ms(latency))
        if record.get("reason") and event != "REFUSED":
            parts.append(str(record["reason"]))
    elif event == "RETRANSMIT":
        parts.append(_count(retransmits, "retransmit"))
    else:
        if record.get("reason"):
            parts.append(f"reason {record['reason']}")
        if record.get("duration_ms") is not None:
            parts.append(f"after {_ms(record['duration_ms'])}")
    if event not in ("CONNECTED", "ACCEPTED") and record.get("bytes_acked") is not None and (
            record.get("bytes_acked") or record.get("bytes_received")):
        parts.append(f"{record['bytes_acked']}B acked/{record['bytes_received']}B received")
    evidence = evidence_text(record.get("evidence"), record.get("evidence_node"))
    return ", ".join(parts) + (f"; {evidence}" if evidence else "")


LIVE_FORMATTERS: dict[str, render.Formatter] = {
    "time": drops_output.clock,
    "src": lambda r: drops_output.endpoint(r.get("src"), r.get("sport")),
    "dst": lambda r: drops_output.endpoint(r.get("dst"), r.get("dport")),
    "state": lambda r: render.cell(r.get("state")),
    "detail": detail,
    "bytes": lambda r: render.cell(r.get("bytes_acked")),
}
WIDTHS = {"time": 15, "event": 14, "src": 21, "dst": 21, "state": 11, "netns": 10}


def live_columns(wide: bool) -> list[tuple[str, render.Formatter, int]]:
    columns = schema.WIDE_COLUMNS if wide else schema.COLUMNS
    return [(header, LIVE_FORMATTERS.get(field, _field_cell(field)), WIDTHS.get(field, 0))
            for header, field in columns]


def _field_cell(field: str) -> render.Formatter:
    return lambda record: render.cell(record.get(field))


def _resets_cell(peer: dict[str, Any]) -> str:
    resets = peer.get("resets") or {}
    if not resets:
        return "0"
    return " ".join(f"{label}={count}" for label, count in sorted(resets.items()))


def _latency_cell(value: Optional[float]) -> str:
    return "-" if value is None else _ms(value)


def peers_table(peers: list[dict[str, Any]], *, names: Optional[dict[str, str]] = None) -> str:
    """Exact per-peer counts; names maps an address to a pod (cluster mode)."""
    headers = [header for header, _ in schema.PEER_COLUMNS]
    rows = []
    for peer in peers:
        address = (names or {}).get(peer["peer"], peer["peer"])
        cells = {"peer": drops_output.endpoint(address, peer.get("port")) if address == peer["peer"]
                 else f"{address}:{peer.get('port')}", "resets": _resets_cell(peer),
                 "latency_p50_ms": _latency_cell(peer.get("latency_p50_ms")),
                 "latency_p99_ms": _latency_cell(peer.get("latency_p99_ms"))}
        rows.append([cells.get(field, render.cell(peer.get(field))) for _, field in schema.PEER_COLUMNS])
    return render.table(headers, rows)


def redraw_peers(tables: list[tuple[str, dict[str, Any]]]) -> None:
    """The --aggregate view, redrawn in place on a terminal, appended otherwise."""
    if sys.stdout.isatty():
        sys.stdout.write("\x1b[H\x1b[2J")
    for label, peers in tables:
        prefix = f"{label}: " if label else ""
        sys.stdout.write(f"{prefix}{peers['seen']} tcp events, {peers['peer_count']} peers\n"
                         f"{peers_table(peers['peers'])}\n\n")
    sys.stdout.flush()


def summary_text(summary: dict[str, Any], *, names: Optional[dict[str, str]] = None) -> str:
    """Exact totals, the lines by event, the peers, the evidence drops."""
    lines = [f"{summary['seen']} tcp events in {summary['duration_s']:.1f}s: {summary['events']} shown, "
             f"{summary['suppressed']} folded or suppressed, {summary['lost']} lost"
             + (f", {summary['missed']} missed by the kernel" if summary.get("missed") else "")
             + (f", {summary['unaccounted']} UNACCOUNTED" if summary.get("unaccounted") else "")]
    by_kind = summary.get("events_by_kind") or {}
    if by_kind:
        lines.append("  " + ", ".join(f"{name} {count}" for name, count in by_kind.items()))
    peers = summary.get("peers") or []
    if peers:
        more = int(summary.get("peer_count") or len(peers)) - len(peers)
        lines += ["", peers_table(peers, names=names)] + ([f"(+{more} more peers)"] if more > 0 else [])
    if summary.get("evidence"):
        lines += ["", f"{summary['drops']} drops of the traced flows (evidence)"]
        reasons = summary.get("reasons") or {}
        if reasons:
            lines.append(render.table(["REASON", "COUNT"], [list(item) for item in reasons.items()]))
    return "\n".join(lines)


def describe_preflight(payload: dict[str, Any]) -> list[str]:
    """The human lines for a preflight record: what runs, and what this kernel lacks."""
    target = payload["target"]
    scope = ("the whole host" if target["whole_host"] else
             f"netns {target['netns'] or '-'} / IPs {', '.join(target['ips']) or '-'}")
    hooks = str(payload.get("hook") or "").split(",")
    lines = [f"Tracing TCP of {scope} via {len(hooks)} tracepoints (kernel {payload['kernel']}); "
             "Ctrl-C to stop."]
    for hook, why in (payload.get("missing_hooks") or {}).items():
        lines.append(f"kubectl-bpf: warning: not traced: {hook}: {why}")
    return lines


class TableSink:
    """Renders records for a person: progress and errors on stderr, the
    table and the summary on stdout. Implements agent.emit.Sink."""

    def __init__(self, *, wide: bool, aggregate: bool) -> None:
        self._live = render.LiveTable(live_columns(wide), sys.stdout, fit=not wide)  # wide: everything
        self._aggregate = aggregate
        self.error: Optional[str] = None

    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None:
        if record_type == schema.TCP:
            self._live.row(payload)
        elif record_type == records.PREFLIGHT:
            for line in describe_preflight(payload):
                click.echo(line, err=True)
        elif record_type == records.READY and not self._aggregate:
            self._live.header()
        elif record_type == schema.PEERS:
            redraw_peers([("", payload)])
        elif record_type == records.SUMMARY:
            sys.stdout.write("\n" + summary_text(payload) + "\n")
        elif record_type == records.ERROR:
            self.error = str(payload["message"])

    def flush(self) -> None:
        self._live.flush()
