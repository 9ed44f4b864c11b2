"""``kubectl-bpf tcp``: options to a RunSpec, then the cluster or ``--local``.

The fronts are the drops gadget's (drops/command.run_local and
drops/on_cluster.run_cluster) with this gadget's renderers plugged in:
one Job per node, the same lease, cleanup, targets and exit codes.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from kubectl_bpf.cli import options
from kubectl_bpf.gadgets.drops import command as drops_command
from kubectl_bpf.gadgets.tcp import output as output_mod
from kubectl_bpf.gadgets.tcp import params as tcp_params
from kubectl_bpf.kube import settings
from kubectl_bpf.protocol import spec


def table_sink(wide: bool, aggregate: bool) -> Any:
    return output_mod.TableSink(wide=wide, aggregate=aggregate)


@click.command("tcp")
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
              help="--local target: connections from or to this address (repeatable).")
@click.option("--duration", type=options.DURATION_TYPE, metavar="DURATION",
              help="Stop after this long, e.g. 30 or 30s (default: until Ctrl-C).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many lines (per node).")
@click.option("--aggregate", is_flag=True,
              help="Count per peer in the kernel and show a refreshed peer table instead of lines.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="SECONDS", help="Refresh period of --aggregate tables and JSON stats records.")
@click.option("--retransmit-gap", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              metavar="SECONDS", help="A connection's retransmits closer than this fold into one line.")
@click.option("--evidence/--no-evidence", default=True, show_default=True,
              help="Also trace kernel drops of the target and attach a flow's drop to its failure.")
@click.option("--ring-kib", type=click.IntRange(min=4), default=1024, show_default=True,
              help="Ring buffer size in KiB (a power of two).")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]), default="table",
              show_default=True, help="json: JSON lines, one record per line; yaml: with --dry-run.")
@options.tracer_options(job_kind="tracer")
@click.option("--dry-run", is_flag=True, help="Print the tracer Job(s) (-o yaml) and create nothing.")
@click.pass_context
def tcp(ctx: click.Context, *, refs: tuple[str, ...], selector: Optional[str], kubeconfig: Optional[str],
        kube_context: Optional[str], namespace: Optional[str], request_timeout: Optional[float],
        local: bool, pids: tuple[int, ...], netns_paths: tuple[str, ...], container_ids: tuple[str, ...],
        ips: tuple[str, ...], duration: Optional[float], count: Optional[int], aggregate: bool,
        interval: float, retransmit_gap: float, evidence: bool, ring_kib: int, output: str,
        tracer: settings.SessionOptions, dry_run: bool) -> None:
    """Show why pods' TCP connections fail: refused, timed out, reset,
    retransmitted, each with the kernel's reason and the drop behind it.

    \b
    TARGET is POD, NS/POD, pod/NAME, deploy/NAME, sts/NAME, ds/NAME or node/NAME;
    or use -l SELECTOR. One tracer Job runs per node and the streams are
    merged. With --local, trace this host instead (--pid/--netns/
    --container-id/--ip; none: every TCP socket on the host).
    """
    if output == "yaml" and not dry_run:
        raise click.BadParameter("yaml output is for --dry-run (the Job manifests)", param_hint="-o")
    if ring_kib & (ring_kib - 1):
        raise click.BadParameter(f"{ring_kib} is not a power of two", param_hint="--ring-kib")
    params = tcp_params.TcpParams(aggregate=aggregate, evidence=evidence, ring_bytes=ring_kib * 1024,
                                  retransmit_gap_s=retransmit_gap)
    run_spec = spec.RunSpec(
        gadget="tcp",
        target=spec.TargetSpec(pids=pids, netns_paths=netns_paths, container_ids=container_ids, ips=ips),
        duration_s=duration, count=count, stats_interval_s=interval, params=params.to_dict())
    if local:
        if refs or selector:
            raise click.UsageError("--local traces this host: use --pid/--netns/--container-id/--ip, "
                                   "not pod targets")
        ctx.exit(drops_command.run_local(run_spec, output=output, table_sink=table_sink))
    if pids or netns_paths or container_ids or ips:
        raise click.UsageError("--pid/--netns/--container-id/--ip need --local; on a cluster name pods")
    if not refs and not selector:
        raise click.UsageError("name a target: POD, deploy/NAME, node/NAME, ... or -l SELECTOR")
    from kubectl_bpf.gadgets.drops import on_cluster  # noqa: PLC0415 -- the Kubernetes client, if needed
    from kubectl_bpf.gadgets.tcp import cluster  # noqa: PLC0415

    kube_options = options.to_kube_options(kubeconfig=kubeconfig, kube_context=kube_context,
                                           namespace=namespace, request_timeout=request_timeout)
    ctx.exit(on_cluster.run_cluster(run_spec, refs=refs, selector=selector, kube_options=kube_options,
                                    tracer=tracer, output=output, dry_run=dry_run,
                                    view_type=cluster.TcpClusterOutput))
