"""How lookups look to people: one live line per lookup, a line per
search-list chain once it ends, and the summary tables. Shared by
``--local`` and the cluster mode.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.dns import schema
from kubectl_bpf.protocol import records

MAX_ANSWERS_SHOWN = 3


def clock(record: dict[str, Any]) -> str:
    text = str(record.get("time", ""))
    return text[11:-1] if len(text) > 20 else text


def answers_cell(record: dict[str, Any]) -> str:
    answers = record.get("answers") or []
    if not answers:
        return "-"
    shown = [f"{a['data']}" if a["type"] in ("A", "AAAA") else f"{a['type']}:{a['data']}"
             for a in answers[:MAX_ANSWERS_SHOWN]]
    more = len(answers) - len(shown)
    return ",".join(shown) + (f",+{more}" if more > 0 else "")


def latency_cell(record: dict[str, Any]) -> str:
    latency = record.get("latency_ms")
    return "-" if latency is None else f"{latency:.1f}ms"


def rcode_cell(record: dict[str, Any]) -> str:
    rcode = str(record.get("rcode"))
    if record.get("truncated"):
        rcode += " TC"
    if record.get("retries"):
        rcode += f" (+{record['retries']} retries)"
    return rcode


def flags_cell(record: dict[str, Any]) -> str:
    flags = [flag for flag, on in (("TC", record.get("truncated")), ("partial", record.get("partial")))
             if on]
    return ",".join(flags) or "-"


def chain_cell(record: dict[str, Any]) -> str:
    chain = record.get("chain")
    return "-" if not chain else f"#{chain['id']} {chain['step']}/{chain['steps']}"


def server_cell(record: dict[str, Any]) -> str:
    """The port only when it is not 53: it is rare and then worth seeing."""
    server = str(record.get("server"))
    port = record.get("server_port")
    if port == 53:
        return server
    return f"[{server}]:{port}" if ":" in server else f"{server}:{port}"


LIVE_FORMATTERS: dict[str, render.Formatter] = {
    "time": clock, "answers": answers_cell, "latency_ms": latency_cell, "rcode": rcode_cell,
    "flags": flags_cell, "chain": chain_cell,
    "server": server_cell,
}
WIDTHS = {"time": 15, "client": 12, "server": 15, "transport": 5, "qtype": 5, "name": 30, "rcode": 10,
          "latency_ms": 9}


def live_columns(wide: bool) -> list[tuple[str, render.Formatter, int]]:
    columns = schema.WIDE_COLUMNS if wide else schema.COLUMNS
    return [(header, LIVE_FORMATTERS.get(field, _field_cell(field)), WIDTHS.get(field, 0))
            for header, field in columns]


def _field_cell(field: str) -> render.Formatter:
    return lambda record: render.cell(record.get(field))


def chain_line(record: dict[str, Any]) -> Optional[str]:
    """After a chain's last lookup: what it cost. None for other lookups."""
    chain = record.get("chain")
    if not chain or chain["step"] != chain["steps"]:
        return None
    if chain["answered_by"] is None:
        outcome = "no name answered"
    elif chain["suffix"] is None:
        outcome = f"answered as it is ({chain['answered_by']})"
    else:
        outcome = f"answered with search suffix {chain['suffix']}"
    return (f"  chain #{chain['id']} {record['qtype']} {chain['base']}: {chain['steps']} tries, "
            f"{outcome}, {chain['wasted_ms']:.1f} ms wasted of {chain['total_ms']:.1f} ms")


def tally_table(title: str, tallies: list[dict[str, Any]]) -> str:
    headers = [title, *(header for header, _ in schema.TALLY_COLUMNS)]
    rows = [[tally["key"], *(_tally_cell(tally, field) for _, field in schema.TALLY_COLUMNS)]
            for tally in tallies]
    return render.table(headers, rows)


def _tally_cell(tally: dict[str, Any], field: str) -> str:
    value = tally.get(field)
    if field == "rcodes":
        return ",".join(f"{name}:{count}" for name, count in (value or {}).items()) or "-"
    return render.cell(value)


def summary_text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['lookups']} lookups ({summary['queries']} queries, {summary['responses']} "
             f"responses) in {summary['duration_s']:.1f}s: {summary['unanswered']} unanswered, "
             f"{summary['chains']} search chains wasting {summary['chain_wasted_ms']:.1f} ms"
             + (f", {summary['pending']} still waiting" if summary.get("pending") else ""),
             f"packets: {summary['packets_seen']} seen, {summary['packets_decoded']} decoded, "
             f"{summary['packets_malformed']} malformed, {summary['packets_lost']} lost"
             + (f", {summary['packets_snapped']} snapped" if summary.get("packets_snapped") else "")]
    if summary.get("names"):
        lines += ["", tally_table("NAME", summary["names"])]
    if summary.get("servers"):
        lines += ["", tally_table("SERVER", summary["servers"])]
    return "\n".join(lines)


class TableSink:
    """Renders records for a person: progress and errors on stderr, lookups
    and the summary on stdout. Implements agent.emit.Sink."""

    def __init__(self, *, wide: bool) -> None:
        self._live = render.LiveTable(live_columns(wide), sys.stdout, fit=not wide)  # wide: everything
        self.error: Optional[str] = None

    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None:
        if record_type == schema.DNS:
            self._live.row(payload)
            line = chain_line(payload)
            if line:
                sys.stdout.write(line + "\n")
        elif record_type == records.PREFLIGHT:
            target = payload["target"]
            scope = "this host's netns" if target["whole_host"] else f"netns {target['netns']}"
            click.echo(f"Capturing DNS of {scope}, both directions, via a {payload['hook']} "
                       f"(kernel {payload['kernel']}); Ctrl-C to stop.", err=True)
        elif record_type == records.READY:
            self._live.header()
        elif record_type == records.SUMMARY:
            sys.stdout.write("\n" + summary_text(payload) + "\n")
        elif record_type == records.ERROR:
            self.error = str(payload["message"])

    def flush(self) -> None:
        self._live.flush()
