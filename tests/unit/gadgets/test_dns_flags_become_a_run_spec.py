"""`dns` flags become the RunSpec the agent runs (the agent is faked: it
needs root), and bad combinations are usage errors (exit 2)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from kubectl_bpf.cli import root as cli
from kubectl_bpf.gadgets.dns import command as dns_command
from kubectl_bpf.gadgets.dns import params as dns_params
from kubectl_bpf.protocol import spec


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[spec.RunSpec, str]]:
    calls: list[tuple[spec.RunSpec, str]] = []

    def fake_run_local(run_spec: spec.RunSpec, *, output: str) -> int:
        calls.append((run_spec, output))
        return 0

    monkeypatch.setattr(dns_command, "run_local", fake_run_local)
    return calls


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, ["dns", *args])


def test_local_flags_become_params_and_targets(runs: list[tuple[spec.RunSpec, str]]) -> None:
    result = invoke("--local", "--pid", "42", "--netns", "/run/netns/x", "--port", "5353", "--timeout", "2s",
                    "--count", "10", "-o", "wide")
    assert result.exit_code == 0, result.output
    ((run_spec, output),) = runs
    assert (run_spec.gadget, run_spec.count, output) == ("dns", 10, "wide")
    assert run_spec.target == spec.TargetSpec(pids=(42,), netns_paths=("/run/netns/x",))
    params = dns_params.DnsParams.from_dict(run_spec.params)
    assert (params.ports, params.timeout_s, params.snap_bytes) == ((53, 5353), 2.0, dns_params.SNAP_BYTES)


def test_defaults_are_the_resolvers_timeout_and_port_53(runs: list[tuple[spec.RunSpec, str]]) -> None:
    assert invoke("--local").exit_code == 0
    params = dns_params.DnsParams.from_dict(runs[0][0].params)
    assert (params.ports, params.timeout_s) == ((53,), 5.0)


@pytest.mark.parametrize(("args", "message"), [
    (["--local", "web"], "--local captures on this host"),
    (["--pid", "1"], "need --local"),
    ([], "name a target"),
    (["--local", *[arg for port in range(1000, 1008) for arg in ("--port", str(port))]], "at most 7 ports"),
    (["--local", "-o", "yaml"], "yaml output is for --dry-run"),
    (["node/worker-1"], "dns captures pods' own traffic"),
])
def test_bad_combinations_are_usage_errors(runs: list[tuple[spec.RunSpec, str]], args: list[str],
                                           message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and message in result.output and not runs


def test_help_says_it_sees_the_pods_own_traffic_in_both_directions() -> None:
    result = invoke("--help")
    assert "sees the pod's own traffic, in both directions" in " ".join(result.output.split())
