"""The agent's entry point in the tracer pod: ``python -m kubectl_bpf.agent --spec JSON``.

Machine-facing on purpose: the client passes one JSON RunSpec as a single
argument (no shell ever parses it) and reads JSON lines from stdout. People
use ``kubectl-bpf <gadget> --local``, which drives the same runner in-process.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional

from kubectl_bpf.agent import emit, errors, runner
from kubectl_bpf.gadgets.dns import node as dns_node
from kubectl_bpf.gadgets.drops import node as drops_node
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.gadgets.policy_test import probe_node
from kubectl_bpf.gadgets.tcp import node as tcp_node
from kubectl_bpf.gadgets.tcp import params as tcp_params
from kubectl_bpf.protocol import exitcodes, records, spec


def _drops(run_spec: spec.RunSpec) -> runner.Gadget:
    return drops_node.DropsGadget(drops_params.DropsParams.from_dict(run_spec.params))


def _tcp(run_spec: spec.RunSpec) -> runner.Gadget:
    return tcp_node.TcpGadget(tcp_params.TcpParams.from_dict(run_spec.params))


# Explicit registry: gadget name -> node-side factory.
NODE_GADGETS: dict[str, Callable[[spec.RunSpec], runner.Gadget]] = {
    "drops": _drops, "probe": probe_node.create_gadget, "tcp": _tcp, "dns": dns_node.create_gadget}


def create_gadget(run_spec: spec.RunSpec) -> runner.Gadget:
    factory = NODE_GADGETS.get(run_spec.gadget)
    if factory is None:
        raise errors.BadInputError(f"unknown gadget {run_spec.gadget!r}; known: {', '.join(NODE_GADGETS)}")
    try:
        return factory(run_spec)
    except (TypeError, ValueError) as exc:
        raise errors.BadInputError(f"invalid {run_spec.gadget} parameters: {exc}") from exc


def run_spec_with_sink(run_spec: spec.RunSpec, sink: emit.Sink) -> int:
    """Run one session into a sink; errors before the runner starts are
    reported on the same stream, so every run ends with an ``end`` record."""
    try:
        gadget = create_gadget(run_spec)
    except errors.AgentError as exc:
        emitter = emit.Emitter(sink)
        emitter.emit(records.ERROR, {"message": str(exc), "exit_code": exc.exit_code})
        emitter.emit(records.END, {"status": "error", "exit_code": exc.exit_code})
        emitter.flush()
        return exc.exit_code
    return runner.run(gadget, run_spec, sink)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubectl_bpf.agent",
                                     description="kubectl-bpf node agent (JSON lines on stdout)")
    parser.add_argument("--spec", required=True, help="RunSpec as one JSON document")
    args = parser.parse_args(argv)
    try:
        run_spec = spec.RunSpec.from_json(args.spec)
    except spec.SpecError as exc:
        print(f"kubectl-bpf agent: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    return run_spec_with_sink(run_spec, emit.JsonLinesSink(sys.stdout.fileno()))


if __name__ == "__main__":
    sys.exit(main())
