"""``kubectl-bpf drops``: options to a RunSpec, then one of two fronts.

On a cluster (the default) the targets are resolved to pods and nodes and a
tracer Job per node runs the agent (kube/session.py); the records come back
through the pod logs and are merged here. With ``--local`` the agent runs in
this process on this host, without Kubernetes: ``-o json`` streams its JSON
lines unchanged, otherwise records go straight to the table renderer.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import click

from kubectl_bpf.cli import options
from kubectl_bpf.gadgets.drops import known_reasons
from kubectl_bpf.gadgets.drops import output as output_mod
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.kube import settings
from kubectl_bpf.protocol import exitcodes, spec


def run_local(run_spec: spec.RunSpec, *, output: str,
              table_sink: Optional[Callable[[bool, bool], Any]] = None) -> int:
    """Run the agent in this process; returns its exit code. table_sink(wide,
    aggregate) makes another gadget's table renderer (default: drops')."""
    from kubectl_bpf.agent import __main__ as agent_main  # noqa: PLC0415 -- kernel code: --local only

    make_table = table_sink or (lambda wide, aggregate: output_mod.TableSink(wide=wide, aggregate=aggregate))
    sink: Any = output_mod.JsonSink() if output == "json" else make_table(
        output == "wide", bool(run_spec.params.get("aggregate")))
    code = agent_main.run_spec_with_sink(run_spec, sink)
    if sink.error:
        click.echo(f"kubectl-bpf: error: {sink.error}", err=True)
    return code


def print_reasons() -> int:
    from kubectl_bpf.agent import libbpf  # noqa: PLC0415 -- kernel code: --local only
    from kubectl_bpf.gadgets.drops import node  # noqa: PLC0415

    try:
        table = node.load_reason_table()
    except libbpf.LibbpfError as exc:
        click.echo(f"kubectl-bpf: error: cannot read drop reasons from kernel BTF: {exc}", err=True)
        return exitcodes.UNSUPPORTED
    if table.derived:
        click.echo("kubectl-bpf: note: this kernel's kfree_skb has no drop reasons; these are derived "
                   "from the freeing function (others show as UNKNOWN)", err=True)
    click.echo("\n".join(table.names()))
    return exitcodes.OK


@click.command("drops")
@options.target_options
@options.kube_options
@click.option("--local", is_flag=True, help="Trace on this host, without Kubernetes.")
@click.option("--pid", "pids", type=int, multiple=True,
              help="--local target: the netns of this process (repeatable).")
@click.option("--netns", "netns_paths", multiple=True, metavar="PATH",
              help="--local target: a netns file, e.g. /run/netns/NAME (repeatable).")
@click.option("--container-id", "container_ids", multiple=True, metavar="ID",
              help="--local target: a container, with or without its runtime:// prefix (repeatable).")
@click.option("--ip", "ips", multiple=True, metavar="ADDR",
              help="--local target: drops to or from this address, anywhere on the host (repeatable).")
@click.option("--duration", type=options.DURATION_TYPE, metavar="DURATION",
              help="Stop after this long, e.g. 30 or 30s (default: until Ctrl-C).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many drop lines (per node).")
@click.option("--reason", "reasons", multiple=True, metavar="NAME",
              help="Only drops with this reason, e.g. NO_SOCKET (repeatable; see --list-reasons). "
                   "On kernels whose kfree_skb has no reasons (before 5.17) REASON is derived from the "
                   "function that freed the packet, so only derived names filter there (NETFILTER_DROP, "
                   "NO_SOCKET, TC_INGRESS, TC_EGRESS): the kernel matches those functions' addresses.")
@click.option("--aggregate", is_flag=True,
              help="Count per flow in the kernel and show a refreshed flow table instead of lines.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="SECONDS", help="Refresh period of --aggregate tables and JSON stats records.")
@click.option("--rate-limit", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="At most N drop lines per second (0: unlimited); counts stay exact.")
@click.option("--ring-kib", type=click.IntRange(min=4), default=2048, show_default=True,
              help="Ring buffer size in KiB (a power of two).")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]), default="table",
              show_default=True, help="json: JSON lines, one record per line; yaml: with --dry-run.")
@click.option("--list-reasons", is_flag=True, help="List this kernel's drop reasons and exit.")
@options.tracer_options(job_kind="tracer")
@click.option("--dry-run", is_flag=True, help="Print the tracer Job(s) (-o yaml) and create nothing.")
@click.pass_context
def drops(ctx: click.Context, *, refs: tuple[str, ...], selector: Optional[str], kubeconfig: Optional[str],
          kube_context: Optional[str], namespace: Optional[str], request_timeout: Optional[float],
          local: bool, pids: tuple[int, ...], netns_paths: tuple[str, ...],
          container_ids: tuple[str, ...], ips: tuple[str, ...], duration: Optional[float],
          count: Optional[int], reasons: tuple[str, ...], aggregate: bool, interval: float,
          rate_limit: int, ring_kib: int, output: str, list_reasons: bool,
          tracer: settings.SessionOptions, dry_run: bool) -> None:
    """Show the packets the kernel dropped to or from pods, and why.

    \b
    TARGET is POD, NS/POD, pod/NAME, deploy/NAME, sts/NAME, ds/NAME or node/NAME
    (every drop on that node); or use -l SELECTOR. One tracer Job runs per
    node and the streams are merged. With --local, trace this host instead
    (--pid/--netns/--container-id/--ip; none: every drop on the host).
    """
    if list_reasons:
        ctx.exit(print_reasons())
    if output == "yaml" and not dry_run:
        raise click.BadParameter("yaml output is for --dry-run (the Job manifests)", param_hint="-o")
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
    if local:
        if refs or selector:
            raise click.UsageError("--local traces this host: use --pid/--netns/--container-id/--ip, "
                                   "not pod targets")
        ctx.exit(run_local(run_spec, output=output))
    if pids or netns_paths or container_ids or ips:
        raise click.UsageError("--pid/--netns/--container-id/--ip need --local; on a cluster name pods")
    try:  # on the cluster, before any Job exists (--local: the agent checks this kernel at once)
        known_reasons.check(reasons)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reason") from exc
    if not refs and not selector:
        raise click.UsageError("name a target: POD, deploy/NAME, node/NAME, ... or -l SELECTOR")
    from kubectl_bpf.gadgets.drops import on_cluster  # noqa: PLC0415 -- the Kubernetes client, if needed

    kube_options = options.to_kube_options(kubeconfig=kubeconfig, kube_context=kube_context,
                                           namespace=namespace, request_timeout=request_timeout)
    ctx.exit(on_cluster.run_cluster(run_spec, refs=refs, selector=selector, kube_options=kube_options,
                                    tracer=tracer, output=output, dry_run=dry_run))
