"""``kubectl-bpf policy-test``: the click command. Parses options, calls the logic, renders.

Two modes. ``--offline FILE`` computes the expected reachability from a YAML export
(issue 5 part 1). Without it the expectations are computed from the cluster's own
objects and then probed for real (live_run, live_cluster): ``--from ns/pod --to
ns/pod|IP --port P`` for one flow, or ``-n NS`` [``-l SEL``] for every ordered pair
of a namespace's pods. The CLI root registers :data:`policy_test` with
``cli.add_command``. Errors are one line on stderr ("Error: ...") with the shared
exit codes: bad flags or input -> USAGE (2), unknown namespace or pod -> NOT_FOUND
(3), a source that cannot be probed -> TARGET_STATE (7), cluster errors as kube/
says. A live run that completes exits with the verdict codes in ``exitcodes``
(10 unexpected deny, 11 unexpected allow, 12 intent mismatch; the lowest wins),
else 1 if a probe could not be judged, else 0.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shlex
import sys
import time
from collections.abc import Iterable
from typing import Literal

import click
import tabulate

from kubectl_bpf.cli import errors as cli_errors
from kubectl_bpf.cli import live, options
from kubectl_bpf.gadgets.policy_test import (
    evaluate,
    inventory,
    live_cluster,
    live_output,
    live_plan,
    live_run,
    probe_params,
    queries,
    schema,
    spec_file,
)
from kubectl_bpf.kube import client, errors, jobs, listing, settings
from kubectl_bpf.protocol import exitcodes

# Records per write: one write per record makes a 1,000-pod matrix several times slower.
WRITE_BATCH = 2000


@click.command("policy-test")
@click.option("--offline", "offline_file", metavar="FILE",
              help="Evaluate the NetworkPolicies in FILE (YAML: a kind: List or a multi-document "
                   "stream, e.g. `kubectl get ns,pods,networkpolicies -A -o yaml`; - reads stdin) "
                   "instead of probing a cluster.")
@click.option("--from", "source_ref", metavar="[NS/]POD", help="Live: probe from this pod.")
@click.option("--to", "destination_ref", metavar="[NS/]POD|IP", help="Live: probe this pod or address.")
@click.option("-f", "--filename", "spec_path", metavar="FILE",
              help="Live: run the tests of a PolicyTest file (named endpoints, tests with from, to, "
                   "ports and expect; defaults for namespace, attempts and timeout).")
@click.option("--port", "port_texts", multiple=True, metavar="PORT[/PROTO]",
              help="Destination port to evaluate: 80, 80/TCP, 53/UDP, 132/SCTP or a container port "
                   "name (resolved on each destination). Repeatable. Default: each destination's "
                   "container ports plus the numeric ports of the policy rules that can apply to it.")
@click.option("-n", "--namespace", metavar="NS",
              help="Only the pods of NS, as both sources and destinations (policies and namespace "
                   "labels elsewhere still count). Live without --from: probe every pair of NS's pods. "
                   "With --from/--to: the namespace of bare pod names. Default offline: all pods; "
                   "live: the context's namespace.")
@click.option("-l", "--selector", metavar="SELECTOR",
              help="Live matrix: only the pods of NS matching this.")
@click.option("--attempts", type=click.IntRange(1, probe_params.MAX_ATTEMPTS), default=3, show_default=True,
              help="Live: connection attempts per probe (attempts that disagree make it FLAKY).")
@click.option("--timeout", "timeout_s", type=options.DURATION_TYPE, default="2s", show_default=True,
              metavar="DURATION", help="Live: how long one attempt waits for an answer.")
@click.option("--rate", "rate_per_s", type=click.FloatRange(min=0.1, max=10000), default=50.0,
              show_default=True, help="Live: attempt starts per second, per source node.")
@click.option("--expect", "declared", type=click.Choice(["allow", "deny"]),
              help="Live: the intended result; a different computed one is INTENT-MISMATCH (exit 12).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: one truth table per port (rows from, columns to), and live one row per "
                   'probe; json: one object {"results": [...]} with a record per (from, to, port).')
@click.option("--junit", "junit_file", metavar="FILE", help="Live: also write a JUnit XML report to FILE.")
@click.option("--kubeconfig", metavar="PATH",
              help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--context", "kube_context", metavar="NAME", help="Kubeconfig context to use.")
@click.option("--request-timeout", type=options.TIMEOUT_TYPE, metavar="DURATION",
              help="Timeout of each API request, e.g. 10s (0: none).")
@options.tracer_options(job_kind="prober")
def policy_test(*, offline_file: str | None, source_ref: str | None, destination_ref: str | None,
                spec_path: str | None,
                port_texts: tuple[str, ...], namespace: str | None, selector: str | None, attempts: int,
                timeout_s: float, rate_per_s: float, declared: schema.Expected | None,
                output: Literal["table", "json"], junit_file: str | None, kubeconfig: str | None,
                kube_context: str | None, request_timeout: float | None,
                tracer: settings.SessionOptions) -> None:
    """Expected reachability between pods under the NetworkPolicies, with the deciding
    rules; live, also the observed one, with the kernel's evidence of every surprise.

    \b
    Offline: every ordered pair of the selected pods (a pod to itself is
    always allowed, hostNetwork pods are "undefined"; Succeeded/Failed pods
    are skipped).
    Live: --from ns/pod --to ns/pod|IP --port P, or -n NS [-l SEL] for a matrix.
    Probes run in the agent on the source's node, inside the source pod's netns.
    Verdicts: PASS, UNEXPECTED-DENY, UNEXPECTED-ALLOW, FLAKY, INTENT-MISMATCH,
    UNDEFINED, ERROR.
    """
    try:
        specs = [queries.parse_port_spec(text) for text in port_texts]
    except queries.PortSpecError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exitcodes.USAGE) from exc
    if offline_file is None:
        if (source_ref is None) != (destination_ref is None):
            raise cli_errors.CommandError("--from and --to go together", exit_code=exitcodes.USAGE)
        if (source_ref is not None or spec_path is not None) and selector:
            raise cli_errors.CommandError("-l selects matrix pods: not with --from/--to or -f",
                                          exit_code=exitcodes.USAGE)
        if source_ref is not None and spec_path is not None:
            raise cli_errors.CommandError("-f and --from/--to are different modes: pick one",
                                          exit_code=exitcodes.USAGE)
        document = None
        if spec_path is not None:
            document = _load_spec_file(spec_path)
            context = click.get_current_context()
            if document.attempts is not None and \
                    context.get_parameter_source("attempts") == click.core.ParameterSource.DEFAULT:
                attempts = document.attempts
            if document.timeout is not None and \
                    context.get_parameter_source("timeout_s") == click.core.ParameterSource.DEFAULT:
                try:
                    timeout_s = options.parse_duration(document.timeout)
                except ValueError as exc:
                    raise cli_errors.CommandError(f"{spec_path}: defaults.timeout: {exc}",
                                                  exit_code=exitcodes.USAGE) from exc
        kube_options = options.to_kube_options(kubeconfig=kubeconfig, kube_context=kube_context,
                                               namespace=namespace, request_timeout=request_timeout)
        request = LiveRequest(source_ref=source_ref, destination_ref=destination_ref, specs=tuple(specs),
                              namespace=namespace, selector=selector, attempts=attempts, timeout_s=timeout_s,
                              rate_per_s=rate_per_s, declared=declared, output=output, junit_file=junit_file,
                              document=document)
        sys.exit(run_live(request, kube_options=kube_options, tracer=tracer))
    if source_ref or destination_ref or declared or junit_file or selector or spec_path:
        raise cli_errors.CommandError("--from/--to/-f/--expect/--junit/-l are live options: "
                                      "not with --offline",
                                      exit_code=exitcodes.USAGE)
    run_offline(offline_file, specs=specs, namespace=namespace, output=output)


def run_offline(offline_file: str, *, specs: list[queries.PortSpec], namespace: str | None,
                output: Literal["table", "json"]) -> None:
    inv = _load(offline_file)
    for warning in inv.warnings:
        click.echo(f"warning: {warning}", err=True)
    try:
        pods = queries.select_pods(inv, namespace)
    except queries.NamespaceNotFoundError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exitcodes.NOT_FOUND) from exc
    try:
        queries.check_named_ports(specs, pods)
    except queries.PortSpecError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exitcodes.USAGE) from exc
    finished = sum(1 for pod in inv.pods if pod.phase in inventory.FINISHED_PHASES
                   and (namespace is None or pod.namespace == namespace))
    if finished:
        click.echo(f"warning: skipped {finished} finished pod(s) (Succeeded/Failed)", err=True)
    groups = queries.evaluate_groups(evaluate.PolicyIndex(inv), pods=pods, specs=specs)
    if output == "json":
        _write_json(group.cells for group in groups)
    else:
        _write_tables(groups)


class LiveRequest:
    """What the user asked of a live run, as parsed flags."""

    def __init__(self, *, source_ref: str | None, destination_ref: str | None,
                 specs: tuple[queries.PortSpec, ...], namespace: str | None, selector: str | None,
                 attempts: int, timeout_s: float, rate_per_s: float, declared: schema.Expected | None,
                 output: Literal["table", "json"], junit_file: str | None,
                 document: spec_file.PolicyTestFile | None = None) -> None:
        self.source_ref = source_ref
        self.destination_ref = destination_ref
        self.specs = specs
        self.namespace = namespace
        self.selector = selector
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.rate_per_s = rate_per_s
        self.declared = declared
        self.output = output
        self.junit_file = junit_file
        self.document = document

    @property
    def matrix(self) -> bool:
        return self.source_ref is None and self.document is None


def check_writable(path: str) -> None:
    """Refuse a --junit FILE that cannot be written before anything runs: it
    used to be found out only after every probe. Opened for append, so an
    existing report is left as it is until the real write."""
    target = pathlib.Path(path)
    if target.is_dir():
        raise cli_errors.CommandError(f"--junit {path}: is a directory", exit_code=exitcodes.USAGE)
    existed = target.exists()
    try:
        with target.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise cli_errors.CommandError(f"--junit {path}: cannot write: {exc.strerror or exc}",
                                      exit_code=exitcodes.USAGE) from exc
    if not existed:
        target.unlink()  # nothing is left behind if the run fails before the report


def run_live(request: LiveRequest, *, kube_options: client.KubeOptions,
             tracer: settings.SessionOptions) -> int:
    """Read, plan, probe, judge, render; returns the exit code."""
    if request.junit_file:
        check_writable(request.junit_file)
    try:
        kube = client.connect(kube_options)
        # Every permission of the run at once, before the first list: the inventory's
        # cluster-wide reads and the probe session's (the targets' own are in the session's check).
        jobs.check_permissions(kube, [*listing.INVENTORY_ACCESS, *jobs.required_access(tracer.job_namespace)])
        cluster = live_cluster.read_inventory(kube)
        plan = _plan(kube, cluster, request)
        for warning in plan.warnings:
            click.echo(f"kubectl-bpf: warning: {warning}", err=True)
        node_plans, bound_s = live_cluster.plan_nodes(
            plan.probes, cluster.hosts, attempts=request.attempts, timeout_s=request.timeout_s,
            rate_per_s=request.rate_per_s)
        started = time.monotonic()
        collected = live_cluster.Collected()
        code = exitcodes.OK
        if node_plans:
            command = " ".join(shlex.quote(arg) for arg in ["kubectl-bpf", *sys.argv[1:]])
            collected, code = live_cluster.run_probes(
                kube, node_plans, options=tracer, duration_s=bound_s, command=command,
                on_progress=lambda text: click.echo(text, err=True), run=live.run_session)
        wall_s = time.monotonic() - started
    except errors.KubeError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exc.exit_code) from exc
    except live_run.LiveError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exc.exit_code) from exc
    if code == exitcodes.INTERRUPTED:
        return code
    for message in collected.errors:
        click.echo(f"kubectl-bpf: error: {message}", err=True)
    results = live_run.judge(plan.probes, collected, cluster.hosts, attempts=request.attempts)
    attempts_done = sum(len(records) for records in collected.attempts.values())
    summary_line = live_output.render_summary(results, wall_s=wall_s, attempts=attempts_done)
    if request.output == "json":
        click.echo(live_output.render_json(results, summary={
            "probes": len(results), "attempts": attempts_done, "wall_s": round(wall_s, 3),
            "attempts_per_s": round(attempts_done / wall_s, 1) if wall_s > 0 else 0.0,
            "exit_code": live_plan.exit_code(results), "nodes": collected.summaries}))
    else:
        if request.matrix:
            click.echo(live_output.render_matrices(results))
            click.echo()
        click.echo(live_output.render_table(results))
    click.echo(summary_line, err=True)
    if request.junit_file:
        try:
            pathlib.Path(request.junit_file).write_text(live_output.render_junit(results, wall_s=wall_s),
                                                        encoding="utf-8")
        except OSError as exc:
            raise cli_errors.CommandError(f"cannot write {request.junit_file}: {exc.strerror or exc}",
                                          exit_code=exitcodes.FAILURE) from exc
    verdict_code = live_plan.exit_code(results)
    if code != exitcodes.OK and verdict_code in (exitcodes.OK, exitcodes.FAILURE):
        return code
    return verdict_code


def _plan(kube: client.Kube, cluster: live_cluster.ClusterInventory, request: LiveRequest) -> live_run.Plan:
    if request.document is not None:
        plan = live_run.plan_spec_file(cluster, request.document, default_namespace=kube.namespace)
        if request.declared is not None:
            plan = live_run.Plan(tuple(dataclasses.replace(probe, declared=request.declared)
                                       for probe in plan.probes), plan.warnings)
        return plan
    if not request.matrix:
        assert request.source_ref is not None and request.destination_ref is not None
        return live_run.Plan(tuple(live_run.plan_pair(
            cluster, source_ref=request.source_ref, destination_ref=request.destination_ref,
            default_namespace=kube.namespace, specs=request.specs, declared=request.declared)))
    namespace = kube.namespace
    keys = live_cluster.select_pod_keys(kube, namespace, request.selector) if request.selector else None
    plan = live_run.plan_matrix(cluster, namespace=namespace, keys=keys, specs=request.specs)
    if request.declared is not None:
        plan = live_run.Plan(tuple(dataclasses.replace(probe, declared=request.declared)
                                   for probe in plan.probes), plan.warnings)
    return plan


def _load_spec_file(path_text: str) -> spec_file.PolicyTestFile:
    try:
        text = sys.stdin.read() if path_text == "-" else pathlib.Path(path_text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise cli_errors.CommandError(f"cannot read {path_text}: {exc}", exit_code=exitcodes.USAGE) from exc
    try:
        return spec_file.load(text)
    except spec_file.SpecFileError as exc:
        raise cli_errors.CommandError(f"{path_text}: {exc}", exit_code=exitcodes.USAGE) from exc


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
