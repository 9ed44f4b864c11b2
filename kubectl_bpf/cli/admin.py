"""``kubectl bpf list``, ``gc`` and ``setup``: what an admin needs to audit
and clean up the tracer Jobs, and to prepare a cluster for them."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Optional

import click
import yaml

from kubectl_bpf.cli import errors as cli_errors
from kubectl_bpf.cli import options, render
from kubectl_bpf.kube import admin, client, errors, jobs

job_namespace_option = click.option(
    "--job-namespace", default=jobs.DEFAULT_JOB_NAMESPACE, show_default=True, metavar="NS",
    help="Namespace of the tracer Jobs.")


def _connected(kubeconfig: Optional[str], kube_context: Optional[str],
               request_timeout: Optional[float], action: Callable[[client.Kube], int]) -> int:
    try:
        kube = client.connect(options.to_kube_options(kubeconfig=kubeconfig, kube_context=kube_context,
                                                      namespace=None, request_timeout=request_timeout))
        return action(kube)
    except errors.KubeError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exc.exit_code) from exc


def _age(seconds: float) -> str:
    """kubectl's AGE style: the largest unit or two."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60}m"


@click.command("list")
@options.connection_options
@job_namespace_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_command(*, kubeconfig: Optional[str], kube_context: Optional[str],
                 request_timeout: Optional[float], job_namespace: str, output: str) -> None:
    """List tracing sessions (their Jobs) and their state."""

    def action(kube: client.Kube) -> int:
        sessions = admin.list_sessions(kube, job_namespace)
        if output == "json":
            rows: list[dict[str, Any]] = [{
                "run_id": s.run_id, "gadget": s.gadget, "node": s.node, "targets": list(s.targets),
                "user": s.user, "host": s.host, "age_s": round(s.age_s, 1), "state": s.state,
                "job": s.job_name, "pod": s.pod_name, "stopped_by": s.stopped_by} for s in sessions]
            sys.stdout.write(json.dumps({"sessions": rows}, indent=2) + "\n")
        elif not sessions:
            click.echo(f"No tracing sessions in namespace {job_namespace}.", err=True)
        else:
            click.echo(render.table(
                ["RUN", "GADGET", "NODE", "TARGETS", "USER", "STATE", "STOPPED-BY", "AGE", "JOB"],
                [[s.run_id, s.gadget, s.node, ",".join(s.targets), s.user or "-", s.state,
                  s.stopped_by or "-", _age(s.age_s), s.job_name] for s in sessions]))
        return 0

    sys.exit(_connected(kubeconfig, kube_context, request_timeout, action))


@click.command("gc")
@options.connection_options
@job_namespace_option
@click.option("--all", "all_sessions", is_flag=True, help="Also stop and remove sessions still running.")
@click.option("--older-than", type=options.AGE_TYPE, metavar="DURATION",
              help="Also remove running sessions older than this, e.g. 2h.")
def gc_command(*, kubeconfig: Optional[str], kube_context: Optional[str],
               request_timeout: Optional[float], job_namespace: str, all_sessions: bool,
               older_than: Optional[float]) -> None:
    """Remove what tracing sessions left: finished or expired Jobs, orphan pods."""

    def action(kube: client.Kube) -> int:
        result = admin.gc(kube, job_namespace, all_sessions=all_sessions, older_than_s=older_than)
        removed = [f"job {name}" for name in result.jobs] + [f"pod {name}" for name in result.pods]
        click.echo("\n".join(f"{name} deleted" for name in removed) if removed else "nothing to remove")
        return 0

    sys.exit(_connected(kubeconfig, kube_context, request_timeout, action))


@click.command("setup")
@options.connection_options
@job_namespace_option
@click.option("--print", "print_only", is_flag=True, help="Print the objects as YAML; change nothing.")
@click.option("--apply", "apply", is_flag=True, help="Create or update them (needs cluster-admin).")
def setup_command(*, kubeconfig: Optional[str], kube_context: Optional[str],
                  request_timeout: Optional[float], job_namespace: str, print_only: bool,
                  apply: bool) -> None:
    """The job namespace (PodSecurity privileged) and RBAC for people who use the plugin."""
    if print_only == apply:
        raise click.UsageError("give exactly one of --print and --apply")
    if print_only:
        sys.stdout.write(yaml.safe_dump_all(admin.setup_objects(job_namespace), sort_keys=False))
        sys.exit(0)

    def action(kube: client.Kube) -> int:
        click.echo("\n".join(admin.apply_setup(kube, job_namespace)))
        return 0

    sys.exit(_connected(kubeconfig, kube_context, request_timeout, action))
