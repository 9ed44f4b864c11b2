"""`drops --local` flags become the RunSpec the agent runs (the agent itself
is replaced by a fake here: running it needs root)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from kubectl_bpf.cli import root as cli
from kubectl_bpf.gadgets.drops import command as drops_command
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.protocol import spec


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[spec.RunSpec, str]]:
    calls: list[tuple[spec.RunSpec, str]] = []

    def fake_run_local(run_spec: spec.RunSpec, *, output: str) -> int:
        calls.append((run_spec, output))
        return 0

    monkeypatch.setattr(drops_command, "run_local", fake_run_local)
    return calls


def invoke(args: list[str]) -> Any:
    result = CliRunner().invoke(cli.cli, ["drops", "--local", *args])
    assert result.exit_code == 0, result.output
    return result


def test_local_alone_traces_the_whole_host_with_defaults(runs: list[tuple[spec.RunSpec, str]]) -> None:
    invoke([])
    ((run_spec, output),) = runs
    assert run_spec.gadget == "drops"
    assert run_spec.target.is_whole_host
    assert (run_spec.duration_s, run_spec.count, run_spec.stats_interval_s) == (None, None, 2.0)
    assert drops_params.DropsParams.from_dict(run_spec.params) == drops_params.DropsParams()
    assert output == "table"


def test_every_target_flag_is_repeatable(runs: list[tuple[spec.RunSpec, str]]) -> None:
    invoke(["--pid", "1", "--pid", "42", "--netns", "/run/netns/a", "--container-id", "containerd://abc",
            "--container-id", "def", "--ip", "10.0.0.1", "--ip", "fd00::1"])
    target = runs[0][0].target
    assert target == spec.TargetSpec(pids=(1, 42), netns_paths=("/run/netns/a",),
                                     container_ids=("containerd://abc", "def"), ips=("10.0.0.1", "fd00::1"))


def test_stop_conditions_and_interval_reach_the_spec(runs: list[tuple[spec.RunSpec, str]]) -> None:
    invoke(["--duration", "2.5", "--count", "10", "--interval", "0.5"])
    run_spec = runs[0][0]
    assert (run_spec.duration_s, run_spec.count, run_spec.stats_interval_s) == (2.5, 10, 0.5)


def test_gadget_flags_become_drops_params(runs: list[tuple[spec.RunSpec, str]]) -> None:
    invoke(["--reason", "NO_SOCKET", "--reason", "TC_INGRESS", "--aggregate", "--rate-limit", "100",
            "--ring-kib", "64"])
    params = drops_params.DropsParams.from_dict(runs[0][0].params)
    assert params == drops_params.DropsParams(reasons=("NO_SOCKET", "TC_INGRESS"), aggregate=True,
                                              rate_limit=100, ring_bytes=64 * 1024)


@pytest.mark.parametrize("output", ["table", "wide", "json"])
def test_output_format_is_passed_through(runs: list[tuple[spec.RunSpec, str]], output: str) -> None:
    invoke(["-o", output])
    assert runs[0][1] == output


def test_the_spec_survives_the_trip_to_an_agent(runs: list[tuple[spec.RunSpec, str]]) -> None:
    invoke(["--pid", "7", "--ip", "10.0.0.1", "--reason", "NO_SOCKET", "--duration", "1"])
    run_spec = runs[0][0]
    restored = spec.RunSpec.from_json(run_spec.to_json())
    assert restored.target == run_spec.target
    assert drops_params.DropsParams.from_dict(restored.params) == drops_params.DropsParams.from_dict(
        run_spec.params)


def test_invalid_flags_never_start_the_agent(runs: list[tuple[spec.RunSpec, str]]) -> None:
    for args in (["--ring-kib", "5"], ["--count", "0"], ["--bogus"]):
        assert CliRunner().invoke(cli.cli, ["drops", "--local", *args]).exit_code == 2
    assert CliRunner().invoke(cli.cli, ["drops", "--pid", "1"]).exit_code == 2
    assert runs == []
