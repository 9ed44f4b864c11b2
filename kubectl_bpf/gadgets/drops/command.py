"""``kubectl-bpf drops``: options to a RunSpec, records to tables.

With ``--local`` the agent runs in this process on this host (no Kubernetes):
``-o json`` streams its JSON lines unchanged, otherwise the records are
handed straight to the table renderer below.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from kubectl_bpf.cli import render
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.gadgets.drops import schema
from kubectl_bpf.protocol import exitcodes, records, spec


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


LIVE_FORMATTERS: dict[str, render.Formatter] = {
    "time": clock,
    "protocol": protocol_cell,
    "src": lambda r: endpoint(r.get("src"), r.get("sport")),
    "dst": lambda r: endpoint(r.get("dst"), r.get("dport")),
}
WIDTHS = {"time": 15, "direction": 7, "protocol": 5, "src": 21, "dst": 21, "reason": 18,
          "location": 26, "ifname": 10, "netns": 10}


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


def summary_text(summary: dict[str, Any]) -> str:
    """The end-of-run report: exact totals, then counts by reason and top flows."""
    lines = [f"{summary['drops']} drops in {summary['duration_s']:.1f}s: {summary['events']} shown, "
             f"{summary['suppressed']} suppressed, {summary['lost']} lost"
             + (f", {summary['missed']} missed by the kernel" if summary.get("missed") else "")
             + (f", {summary['unaccounted']} UNACCOUNTED" if summary.get("unaccounted") else "")]
    reasons = summary.get("reasons") or {}
    if reasons:
        lines += ["", render.table(["REASON", "COUNT"], [[name, count] for name, count in reasons.items()])]
    flows = summary.get("flows") or []
    if flows:
        more = summary.get("flow_count", len(flows)) - len(flows)
        lines += ["", flows_table(flows)] + ([f"(+{more} more flows)"] if more > 0 else [])
    return "\n".join(lines)


class TableSink:
    """Renders records for a person: progress and errors on stderr, the
    table and the summary on stdout. Implements agent.emit.Sink."""

    def __init__(self, *, wide: bool, aggregate: bool) -> None:
        self._live = render.LiveTable(live_columns(wide), sys.stdout)
        self._aggregate = aggregate
        self._tty = sys.stdout.isatty()
        self.error: Optional[str] = None

    def write(self, record_type: str, seq: int, payload: dict[str, Any]) -> None:
        if record_type == schema.DROP:
            self._live.row(payload)
        elif record_type == records.PREFLIGHT:
            target = payload["target"]
            scope = ("the whole host" if target["whole_host"] else
                     f"netns {target['netns'] or '-'} / IPs {', '.join(target['ips']) or '-'}")
            click.echo(f"Tracing drops of {scope} via {payload['hook']} (kernel {payload['kernel']}); "
                       "Ctrl-C to stop.", err=True)
        elif record_type == records.READY and not self._aggregate:
            self._live.header()
        elif record_type == schema.FLOWS:
            if self._tty:
                sys.stdout.write("\x1b[H\x1b[2J")  # redraw in place on a terminal
            sys.stdout.write(f"{payload['drops']} drops, {payload['flow_count']} flows\n"
                             f"{flows_table(payload['flows'])}\n\n")
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


def run_local(run_spec: spec.RunSpec, *, output: str) -> int:
    """Run the agent in this process; returns its exit code."""
    from kubectl_bpf.agent import __main__ as agent_main  # noqa: PLC0415 -- kernel code: --local only

    sink: Any = JsonSink() if output == "json" else TableSink(
        wide=output == "wide", aggregate=bool(run_spec.params.get("aggregate")))
    code = agent_main.run_spec_with_sink(run_spec, sink)
    if sink.error:
        click.echo(f"kubectl-bpf: error: {sink.error}", err=True)
    return code


def print_reasons() -> int:
    from kubectl_bpf.agent import libbpf  # noqa: PLC0415 -- kernel code: --local only
    from kubectl_bpf.gadgets.drops import node  # noqa: PLC0415

    try:
        names = node.load_reason_table().names()
    except libbpf.LibbpfError as exc:
        click.echo(f"kubectl-bpf: error: cannot read drop reasons from kernel BTF: {exc}", err=True)
        return exitcodes.UNSUPPORTED
    click.echo("\n".join(names))
    return exitcodes.OK


@click.command("drops")
@click.option("--local", is_flag=True, help="Trace on this host, without Kubernetes.")
@click.option("--pid", "pids", type=int, multiple=True,
              help="Target: the netns of this process (repeatable).")
@click.option("--netns", "netns_paths", multiple=True, metavar="PATH",
              help="Target: a netns file, e.g. /run/netns/NAME (repeatable).")
@click.option("--container-id", "container_ids", multiple=True, metavar="ID",
              help="Target: a container, with or without its runtime:// prefix (repeatable).")
@click.option("--ip", "ips", multiple=True, metavar="ADDR",
              help="Target: drops to or from this address, anywhere on the host (repeatable).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this long (default: until Ctrl-C).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many drop lines.")
@click.option("--reason", "reasons", multiple=True, metavar="NAME",
              help="Only drops with this reason, e.g. NO_SOCKET (repeatable; see --list-reasons).")
@click.option("--aggregate", is_flag=True,
              help="Count per flow in the kernel and show a refreshed flow table instead of lines.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="SECONDS", help="Refresh period of --aggregate tables and JSON stats records.")
@click.option("--rate-limit", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="At most N drop lines per second (0: unlimited); counts stay exact.")
@click.option("--ring-kib", type=click.IntRange(min=4), default=8192, show_default=True,
              help="Ring buffer size in KiB (a power of two).")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json"]), default="table",
              show_default=True, help="json: the agent's JSON lines, one record per line.")
@click.option("--list-reasons", is_flag=True, help="List this kernel's drop reasons and exit.")
@click.pass_context
def drops(ctx: click.Context, *, local: bool, pids: tuple[int, ...], netns_paths: tuple[str, ...],
          container_ids: tuple[str, ...], ips: tuple[str, ...], duration: Optional[float],
          count: Optional[int], reasons: tuple[str, ...], aggregate: bool, interval: float,
          rate_limit: int, ring_kib: int, output: str, list_reasons: bool) -> None:
    """Show the packets the kernel dropped, and why.

    Without a target (--local alone) every drop on the host is shown.
    """
    if list_reasons:
        ctx.exit(print_reasons())
    if not local:
        raise click.UsageError("tracing pods needs the cluster mode, which this version does not have "
                               "yet; use --local with --pid/--netns/--container-id/--ip")
    try:
        params = drops_params.DropsParams(reasons=reasons, aggregate=aggregate, rate_limit=rate_limit,
                                          ring_bytes=ring_kib * 1024)
    except ValueError as exc:
        if ring_kib & (ring_kib - 1):
            raise click.BadParameter(f"{ring_kib} is not a power of two", param_hint="--ring-kib") from exc
        raise click.BadParameter(str(exc)) from exc
    run_spec = spec.RunSpec(
        gadget="drops",
        target=spec.TargetSpec(pids=pids, netns_paths=netns_paths, container_ids=container_ids, ips=ips),
        duration_s=duration, count=count, stats_interval_s=interval, params=params.to_dict())
    ctx.exit(run_local(run_spec, output=output))
