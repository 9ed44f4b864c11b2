"""How drop records look to people: live table rows, flow tables, the
summary. Shared by ``--local`` and the cluster mode, which adds NODE and POD
columns in front.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.drops import modes, schema
from kubectl_bpf.protocol import records


def endpoint(address: Optional[str], port: Optional[int]) -> str:
    if address is None:
        return "-"
    host = f"[{address}]" if ":" in address else address
    return host if port is None else f"{host}:{port}"


def clock(record: dict[str, Any]) -> str:
    """The time of day from an ISO timestamp: the date is noise in a live view."""
    time_text = str(record.get("time", ""))
    return time_text[11:-1] if len(time_text) > 20 else time_text


def protocol_cell(record: dict[str, Any]) -> str:
    if record.get("icmp_type") is not None:
        return f"{record['protocol']}/{record['icmp_type']}:{record['icmp_code']}"
    return str(record.get("protocol"))


def reason_cell(record: dict[str, Any]) -> str:
    """A reason derived from the location (kernels without reasons) is marked with *."""
    return f"{record.get('reason')}{DERIVED_MARK if record.get('reason_source') == 'location' else ''}"


DERIVED_MARK = "*"

LIVE_FORMATTERS: dict[str, render.Formatter] = {
    "time": clock,
    "reason": reason_cell,
    "protocol": protocol_cell,
    "src": lambda r: endpoint(r.get("src"), r.get("sport")),
    "dst": lambda r: endpoint(r.get("dst"), r.get("dport")),
}
WIDTHS = {"time": 15, "direction": 7, "protocol": 5, "src": 21, "dst": 21, "reason": 18,
          "location": 26, "ifname": 10, "netns": 10}


# Left out first when the table does not fit the terminal (-o wide keeps them):
# the kernel function is for a second look, the time is on every line.
OPTIONAL_COLUMNS = ("LOCATION", "TIME")


def live_columns(wide: bool) -> list[tuple[str, render.Formatter, int]]:
    columns = schema.WIDE_COLUMNS if wide else schema.COLUMNS
    return [(header, LIVE_FORMATTERS.get(field, _field_cell(field)), WIDTHS.get(field, 0))
            for header, field in columns]


def _field_cell(field: str) -> render.Formatter:
    return lambda record: render.cell(record.get(field))


def flows_table(flows: list[dict[str, Any]]) -> str:
    headers = [header for header, _ in schema.FLOW_COLUMNS]
    rows = [[render.cell(flow.get(field)) for _, field in schema.FLOW_COLUMNS] for flow in flows]
    return render.table(headers, rows)


def flows_text(tables: list[tuple[str, dict[str, Any]]]) -> str:
    """The --aggregate view: one flows table per (label, flows record)."""
    text = ""
    for label, flows in tables:
        prefix = f"{label}: " if label else ""
        text += (f"{prefix}{flows['drops']} drops, {flows['flow_count']} flows\n"
                 f"{flows_table(flows['flows'])}\n\n")
    return text


def summary_text(summary: dict[str, Any]) -> str:
    """The end-of-run report: exact totals, then counts by reason and top flows."""
    lines = [f"{summary['drops']} drops in {summary['duration_s']:.1f}s: {summary['events']} shown, "
             f"{summary['suppressed']} suppressed, {summary['lost']} lost"
             + (f", {summary['transport_lost']} lost in transport (the node's log rotated before it was "
                "read)" if summary.get("transport_lost") else "")
             + (f", {summary['missed']} missed by the kernel" if summary.get("missed") else "")
             + (f", {summary['unaccounted']} UNACCOUNTED" if summary.get("unaccounted") else "")]
    mode = summary.get("mode")
    if mode:
        lines.append(f"Reasons: {modes.label(mode)}")
    derived = (mode or {}).get("reasons") == modes.REASONS_DERIVED
    reasons = summary.get("reasons") or {}
    if reasons:
        rows = [[name + (DERIVED_MARK if derived and name != "UNKNOWN" else ""), count]
                for name, count in reasons.items()]
        lines += ["", render.table(["REASON", "COUNT"], rows)]
    flows = summary.get("flows") or []
    if flows:
        more = summary.get("flow_count", len(flows)) - len(flows)
        lines += ["", flows_table(flows)] + ([f"(+{more} more flows)"] if more > 0 else [])
    return "\n".join(lines)


class TableSink:
    """Renders records for a person: progress and errors on stderr, the
    table and the summary on stdout. Implements agent.emit.Sink."""

    def __init__(self, *, wide: bool, aggregate: bool) -> None:
        self._live = render.LiveTable(live_columns(wide), sys.stdout, fit=not wide, optional=OPTIONAL_COLUMNS)
        self._aggregate = aggregate
        self._flows_view = render.Redraw(sys.stdout)
        self.error: Optional[str] = None

    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None:
        if record_type == schema.DROP:
            self._live.row(payload)
        elif record_type == records.PREFLIGHT:
            target = payload["target"]
            scope = ("the whole host" if target["whole_host"] else
                     f"netns {target['netns'] or '-'} / IPs {', '.join(target['ips']) or '-'}")
            mode = payload.get("mode") or {}
            click.echo(f"Tracing drops of {scope} via {payload['hook']} (kernel {payload['kernel']}"
                       + (f", {modes.label(mode)}" if mode else "") + "); Ctrl-C to stop.", err=True)
            for line in mode.get("degraded", []):
                click.echo(f"kubectl-bpf: note: {line}", err=True)
        elif record_type == records.READY and not self._aggregate:
            self._live.header()
        elif record_type == schema.FLOWS:
            self._flows_view.show(flows_text([("", payload)]))
        elif record_type == records.SUMMARY:
            sys.stdout.write("\n" + summary_text(payload) + "\n")
        elif record_type == records.ERROR:
            self.error = str(payload["message"])

    def flush(self) -> None:
        self._live.flush()


class JsonSink:
    """JSON lines on stdout, plus the error as one human line on stderr."""

    def __init__(self) -> None:
        from kubectl_bpf.agent import emit  # noqa: PLC0415 -- the agent's writer, --local only

        self._lines = emit.JsonLinesSink(sys.stdout.fileno())
        self.error: Optional[str] = None

    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None:
        if record_type == records.ERROR:
            self.error = str(payload["message"])
        self._lines.write(record_type, seq, payload)

    def flush(self) -> None:
        sys.stdout.flush()
        self._lines.flush()
