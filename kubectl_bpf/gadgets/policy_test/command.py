"""``kubectl-bpf policy-test``: the click command. Parses options, calls the logic, renders.

Only the offline mode exists so far (issue 5 part 1): the expected reachability
computed from a YAML export. The CLI root registers :data:`policy_test` with
``cli.add_command``. Errors are one line on stderr ("Error: ...") with the shared
exit codes: bad flags or input file -> USAGE (2), unknown ``-n`` namespace ->
NOT_FOUND (3). The verdict codes in ``exitcodes`` belong to the live mode.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Iterable
from typing import Literal

import click
import tabulate

from kubectl_bpf.cli import errors as cli_errors
from kubectl_bpf.gadgets.policy_test import evaluate, inventory, queries, schema
from kubectl_bpf.protocol import exitcodes

# Records per write: one write per record makes a 1,000-pod matrix several times slower.
WRITE_BATCH = 2000


@click.command("policy-test")
@click.option("--offline", "offline_file", metavar="FILE",
              help="Evaluate the NetworkPolicies in FILE (YAML: a kind: List or a multi-document "
                   "stream, e.g. `kubectl get ns,pods,networkpolicies -A -o yaml`; - reads stdin) "
                   "instead of probing a cluster.")
@click.option("--port", "port_texts", multiple=True, metavar="PORT[/PROTO]",
              help="Destination port to evaluate: 80, 80/TCP, 53/UDP, 132/SCTP or a container port "
                   "name (resolved on each destination). Repeatable. Default: each destination's "
                   "container ports plus the numeric ports of the policy rules that can apply to it.")
@click.option("-n", "--namespace", metavar="NS",
              help="Only the pods of NS, as both sources and destinations (policies and namespace "
                   "labels elsewhere still count). Default: all pods.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: one truth table per port (rows from, columns to); json: one object "
                   '{"results": [...]} with a record per (from, to, port).')
def policy_test(offline_file: str | None, port_texts: tuple[str, ...], namespace: str | None,
                output: Literal["table", "json"]) -> None:
    """Expected reachability between pods under the NetworkPolicies, with the deciding rules.

    Covers every ordered pair of the selected pods (a pod to itself and hostNetwork
    pods are "undefined"). Pods that have finished (Succeeded/Failed) are skipped.
    """
    try:
        specs = [queries.parse_port_spec(text) for text in port_texts]
    except queries.PortSpecError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exitcodes.USAGE) from exc
    if offline_file is None:
        raise cli_errors.CommandError("live probes are not implemented yet: pass --offline FILE",
                              exit_code=exitcodes.USAGE)
    inv = _load(offline_file)
    for warning in inv.warnings:
        click.echo(f"warning: {warning}", err=True)
    try:
        pods = queries.select_pods(inv, namespace)
    except queries.NamespaceNotFoundError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exitcodes.NOT_FOUND) from exc
    finished = sum(1 for pod in inv.pods if pod.phase in inventory.FINISHED_PHASES
                   and (namespace is None or pod.namespace == namespace))
    if finished:
        click.echo(f"warning: skipped {finished} finished pod(s) (Succeeded/Failed)", err=True)
    groups = queries.evaluate_groups(evaluate.PolicyIndex(inv), pods=pods, specs=specs)
    if output == "json":
        _write_json(group.cells for group in groups)
    else:
        _write_tables(groups)


def _load(path_text: str) -> inventory.Inventory:
    try:
        text = sys.stdin.read() if path_text == "-" else pathlib.Path(path_text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise cli_errors.CommandError(f"cannot read {path_text}: {reason}",
                                      exit_code=exitcodes.USAGE) from exc
    try:
        return inventory.load_inventory(text)
    except inventory.InventoryError as exc:
        raise cli_errors.CommandError(f"{path_text}: {exc}", exit_code=exitcodes.USAGE) from exc


def _write_json(cell_streams: Iterable[Iterable[queries.Cell]]) -> None:
    """Exactly one JSON object, streamed a batch of records at a time, one record per line.

    A matrix has few distinct verdicts, so everything after "from" and "to" is encoded
    once per (port, name, verdict) and reused: a million records take seconds, not tens.
    """
    keys: dict[inventory.Pod, str] = {}
    tails: dict[tuple[evaluate.Traffic | None, str | None, evaluate.Verdict], str] = {}
    batch: list[str] = []
    first = True
    click.echo('{"results": [', nl=False)
    for cells in cell_streams:
        for cell in cells:
            tail_key = (cell.traffic, cell.named_port, cell.verdict)
            tail = tails.get(tail_key)
            if tail is None:
                fields = {name: value for name, value in queries.build_record(cell).items()
                          if name not in ("from", "to")}
                tail = tails[tail_key] = json.dumps(fields, ensure_ascii=False)[1:]
            source = keys.get(cell.source) or keys.setdefault(cell.source, json.dumps(cell.source.key))
            destination = (keys.get(cell.destination)
                           or keys.setdefault(cell.destination, json.dumps(cell.destination.key)))
            record = f'{{"from": {source}, "to": {destination}, {tail}'
            batch.append(("\n" if first else ",\n") + record)
            first = False
            if len(batch) >= WRITE_BATCH:
                click.echo("".join(batch), nl=False)
                batch.clear()
    click.echo("".join(batch) + ("]}" if first else "\n]}"))


def _write_tables(groups: Iterable[queries.PortGroup]) -> None:
    written = False
    for group in groups:
        if written:
            click.echo()
        click.echo(f"port {group.title}")
        click.echo(_render_table(group))
        written = True
    if written:
        click.echo()
        click.echo(schema.LEGEND)
    else:
        click.echo("no pods to evaluate", err=True)


def _render_table(group: queries.PortGroup) -> str:
    width = len(group.destinations)
    rows: list[list[str]] = []
    row: list[str] = []
    for cell in group.cells:
        if not row:
            row.append(cell.source.key)
        row.append(_symbol(cell.verdict))
        if len(row) == width + 1:
            rows.append(row)
            row = []
    # The house table style (cli/render.py), not imported from there: kubectl_bpf.cli
    # imports this module, so importing it back would be circular.
    return tabulate.tabulate(rows, headers=["FROM \\ TO", *(pod.key for pod in group.destinations)],
                             tablefmt="plain", disable_numparse=True)


def _symbol(verdict: evaluate.Verdict) -> str:
    symbol = schema.SYMBOLS[verdict.expected]
    return symbol + schema.CNI_DEPENDENT_MARK if verdict.cni_dependent else symbol
