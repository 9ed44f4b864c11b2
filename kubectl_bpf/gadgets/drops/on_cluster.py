"""``kubectl-bpf drops`` on a cluster: resolve the targets, run one tracer
Job per node (kube/session.py), merge and render what comes back.

Imported only for the cluster mode: it pulls in the Kubernetes client,
which ``--local`` does not need.
"""

from __future__ import annotations

import shlex
import sys
from typing import Callable, Optional

import click
import yaml

from kubectl_bpf.cli import errors as cli_errors
from kubectl_bpf.cli import live
from kubectl_bpf.gadgets.drops import cluster
from kubectl_bpf.kube import client, errors, session, settings, targets
from kubectl_bpf.protocol import exitcodes, spec

# (pod index, output=, aggregate=) -> the renderer of the merged stream
ViewType = Callable[..., cluster.ClusterOutput]
# Adds what a gadget needs from the resolved pods to its RunSpec (dns: the search lists).
Prepare = Callable[[client.Kube, targets.Resolution, spec.RunSpec], spec.RunSpec]


def build_session(kube: client.Kube, run_spec: spec.RunSpec, resolution: targets.Resolution,
                  tracer: settings.SessionOptions) -> session.Session:
    command = " ".join(shlex.quote(arg) for arg in ["kubectl-bpf", *sys.argv[1:]])
    return session.Session(kube, gadget=run_spec.gadget, run_spec=run_spec, groups=resolution.groups,
                           options=tracer, command=command,
                           on_progress=lambda text: click.echo(text, err=True))


def run_cluster(run_spec: spec.RunSpec, *, refs: tuple[str, ...], selector: Optional[str],
                kube_options: client.KubeOptions, tracer: settings.SessionOptions, output: str,
                dry_run: bool, view_type: ViewType = cluster.ClusterOutput,
                prepare: Optional[Prepare] = None) -> int:
    """Resolve, start one Job per node, stream until every agent ended. Shared
    by the gadgets that trace targets: view_type renders their records."""
    try:
        kube = client.connect(kube_options)
        resolution = targets.resolve(kube, refs, selector=selector)
        for warning in resolution.warnings:
            click.echo(f"kubectl-bpf: warning: {warning}", err=True)
        if prepare is not None:
            run_spec = prepare(kube, resolution, run_spec)
        live_session = build_session(kube, run_spec, resolution, tracer)
        if dry_run:
            sys.stdout.write(yaml.safe_dump_all(live_session.jobs, sort_keys=False))
            return exitcodes.OK
        index = cluster.PodIndex(resolution.groups, targets.address_names(kube))
        view = view_type(index, output=output, aggregate=bool(run_spec.params.get("aggregate")))
        code = live.run_session(live_session, on_record=view.handle, on_idle=view.flush,
                                on_finished=view.finished)
        view.finish()
        return code
    except errors.KubeError as exc:
        raise cli_errors.CommandError(str(exc), exit_code=exc.exit_code) from exc
