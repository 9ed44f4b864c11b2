"""``kubectl-bpf dns``: options to a RunSpec, then one of two fronts.

On a cluster the targets are resolved to pods and nodes and a Job per node
runs the agent (drops/on_cluster.py, with cluster.py's renderer and search
lists); with ``--local`` the agent runs in this process
on this host, without Kubernetes.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from kubectl_bpf.cli import options
from kubectl_bpf.gadgets.dns import output as output_mod
from kubectl_bpf.gadgets.dns import params as dns_params
from kubectl_bpf.gadgets.drops import output as drops_output
from kubectl_bpf.kube import settings
from kubectl_bpf.protocol import spec


def run_local(run_spec: spec.RunSpec, *, output: str) -> int:
    """Run the agent in this process; returns its exit code."""
    from kubectl_bpf.agent import __main__ as agent_main  # noqa: PLC0415 -- kernel code: --local only

    sink: Any = drops_output.JsonSink() if output == "json" else output_mod.TableSink(wide=output == "wide")
    code = agent_main.run_spec_with_sink(run_spec, sink)
    if sink.error:
        click.echo(f"kubectl-bpf: error: {sink.error}", err=True)
    return code


@click.command("dns")
@options.target_options
@options.kube_options
@click.option("--local", is_flag=True, help="Capture on this host, without Kubernetes.")
@click.option("--pid", "pids", type=int, multiple=True,
              help="--local target: the netns (and resolv.conf) of this process (repeatable).")
@click.option("--netns", "netns_paths", multiple=True, metavar="PATH",
              help="--local target: a netns file, e.g. /run/netns/NAME (repeatable; no search list).")
@click.option("--container-id", "container_ids", multiple=True, metavar="ID",
              help="--local target: a container, with or without its runtime:// prefix (repeatable).")
@click.option("--port", "ports", type=click.IntRange(1, 65535), multiple=True,
              help="Also a DNS server port besides 53, e.g. 5353 (repeatable, up to 7).")
@click.option("--timeout", "timeout_s", type=options.DURATION_TYPE, default=5.0, show_default=True,
              metavar="DURATION", help="A query with no answer after this long is UNANSWERED.")
@click.option("--duration", type=options.DURATION_TYPE, metavar="DURATION",
              help="Stop after this long, e.g. 30 or 30s (default: until Ctrl-C).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many lookups (per node).")
@click.option("--snap-bytes", type=click.IntRange(64, 65535), default=dns_params.SNAP_BYTES,
              show_default=True, help="DNS bytes kept per packet; longer answers are marked partial.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              metavar="SECONDS", help="Period of the JSON stats records.")
@click.option("--cluster-domain", default="cluster.local", show_default=True, metavar="DOMAIN",
              help="The kubelet's cluster domain, for search lists derived from pod specs.")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]), default="table",
              show_default=True, help="json: JSON lines, one record per line; yaml: with --dry-run.")
@options.tracer_options(job_kind="tracer")
@click.option("--dry-run", is_flag=True, help="Print the tracer Job(s) (-o yaml) and create nothing.")
@click.pass_context
def dns(ctx: click.Context, *, refs: tuple[str, ...], selector: Optional[str], kubeconfig: Optional[str],
        kube_context: Optional[str], namespace: Optional[str], request_timeout: Optional[float],
        local: bool, pids: tuple[int, ...], netns_paths: tuple[str, ...], container_ids: tuple[str, ...],
        ports: tuple[int, ...], timeout_s: float, duration: Optional[float], count: Optional[int],
        snap_bytes: int, interval: float, cluster_domain: str, output: str, tracer: settings.SessionOptions,
        dry_run: bool) -> None:
    """Show every DNS lookup of pods: answer, error, latency, and the ones never answered.

    It sees the pod's own traffic, in both directions: a BPF socket filter
    on a packet socket opened inside each target pod's network namespace
    passes only DNS (UDP and TCP port 53, plus --port) to the agent, which
    nothing in the pod runs or notices. Queries are matched to responses;
    a query without one within --timeout is UNANSWERED, with its retries;
    lookups of one name through the pod's search list (ndots) are shown as
    one chain, with the suffix that answered and the time wasted before it.

    TARGET is POD, NS/POD, pod/NAME, deploy/NAME, sts/NAME or ds/NAME; or
    use -l SELECTOR. With --local, capture on this host instead
    (--pid/--netns/--container-id; none: this host's own netns).
    """
    if output == "yaml" and not dry_run:
        raise click.BadParameter("yaml output is for --dry-run (the Job manifests)", param_hint="-o")
    try:
        params = dns_params.DnsParams(ports=ports, timeout_s=timeout_s, snap_bytes=snap_bytes)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    run_spec = spec.RunSpec(
        gadget="dns", target=spec.TargetSpec(pids=pids, netns_paths=netns_paths, container_ids=container_ids),
        duration_s=duration, count=count, stats_interval_s=interval, params=params.to_dict())
    if local:
        if refs or selector:
            raise click.UsageError("--local captures on this host: use --pid/--netns/--container-id, "
                                   "not pod targets")
        ctx.exit(run_local(run_spec, output=output))
    if pids or netns_paths or container_ids:
        raise click.UsageError("--pid/--netns/--container-id need --local; on a cluster name pods")
    if not refs and not selector:
        raise click.UsageError("name a target: POD, deploy/NAME, ... or -l SELECTOR")
    from kubectl_bpf.gadgets.dns import cluster  # noqa: PLC0415 -- the Kubernetes client, if needed
    from kubectl_bpf.gadgets.drops import on_cluster  # noqa: PLC0415
    from kubectl_bpf.kube import errors, targets  # noqa: PLC0415

    try:
        nodes = [ref for ref in refs if targets.parse_target(ref).kind == targets.NODE]
    except errors.KubeError as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from exc
    if nodes:
        # A node's own netns is not where its pods resolve names: each pod has its own.
        raise click.UsageError(f"dns captures pods' own traffic: name pods or -l, not {nodes[0]}")

    kube_options = options.to_kube_options(kubeconfig=kubeconfig, kube_context=kube_context,
                                           namespace=namespace, request_timeout=request_timeout)
    ctx.exit(on_cluster.run_cluster(run_spec, refs=refs, selector=selector, kube_options=kube_options,
                                    tracer=tracer, output=output, dry_run=dry_run,
                                    view_type=cluster.DnsClusterOutput,
                                    prepare=cluster.prepare_search(cluster_domain)))
