"""`kubectl-bpf` as a user meets it: exit codes, and every error as one
line on stderr (kubectl_bpf.cli.root.main folds click's usage errors)."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

import kubectl_bpf
from kubectl_bpf.agent import libbpf
from kubectl_bpf.cli import root as cli
from kubectl_bpf.gadgets.drops import command as drops_command
from kubectl_bpf.gadgets.drops import node
from kubectl_bpf.protocol import exitcodes


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    captured = capsys.readouterr()
    code = caught.value.code
    assert isinstance(code, int)
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kubectl-bpf: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_drops_without_a_target_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["drops"], capsys)
    assert code == exitcodes.USAGE == 2
    assert out == ""
    assert_one_error_line(err, "name a target", "kubectl-bpf drops --help")


@pytest.mark.parametrize("args", [["drops", "--pid", "1"], ["drops", "--local", "web"],
                                  ["drops", "web", "-o", "yaml"]])
def test_drops_host_and_pod_targets_do_not_mix(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(args, capsys)
    assert code == exitcodes.USAGE
    assert out == ""
    assert_one_error_line(err)


def test_unknown_option_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["drops", "--local", "--bogus"], capsys)
    assert (code, out) == (2, "")
    assert_one_error_line(err, "--bogus")


def test_unknown_command_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["trace-everything"], capsys)
    assert code == 2
    assert_one_error_line(err, "trace-everything", "kubectl-bpf --help")


def test_ring_size_not_a_power_of_two_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["drops", "--local", "--ring-kib", "5"], capsys)
    assert (code, out) == (2, "")
    assert_one_error_line(err, "power of two")


@pytest.mark.parametrize("args", [
    ["--duration", "0"], ["--duration", "-1"], ["--count", "0"], ["--ring-kib", "2"], ["-o", "yaml"],
    ["--rate-limit", "-5"], ["--interval", "0"], ["--pid", "abc"],
])
def test_out_of_range_values_are_one_line_usage_errors(args: list[str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["drops", "--local", *args], capsys)
    assert (code, out) == (2, "")
    assert_one_error_line(err)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["--version"], capsys)
    assert code == 0
    assert out == f"kubectl-bpf, version {kubectl_bpf.__version__}\n"
    assert err == ""


def test_help_lists_the_drops_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    assert "drops" in out and "Usage: kubectl-bpf" in out


def test_the_agents_exit_code_becomes_the_process_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(drops_command, "run_local", lambda run_spec, output: exitcodes.NOT_FOUND)
    code, _, _ = run_main(["drops", "--local", "--pid", "99999"], capsys)
    assert code == exitcodes.NOT_FOUND


def test_interrupt_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(run_spec: Any, output: str) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(drops_command, "run_local", interrupted)
    code, _, err = run_main(["drops", "--local"], capsys)
    assert code == exitcodes.INTERRUPTED == 130
    assert "kubectl-bpf: interrupted" in err.strip().splitlines()[-1]


# -- the click group itself, through CliRunner -------------------------------------------------------


def test_click_group_exits_2_on_usage_errors() -> None:
    runner = CliRunner()
    for args in (["drops"], ["drops", "--local", "--ring-kib", "5"], ["drops", "--nope"]):
        result = runner.invoke(cli.cli, args)
        assert result.exit_code == 2, args
        assert result.stdout == ""
        assert "Error:" in result.stderr


def test_click_group_version() -> None:
    result = CliRunner().invoke(cli.cli, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"kubectl-bpf, version {kubectl_bpf.__version__}\n")


def test_list_reasons_prints_the_kernels_reason_names() -> None:
    result = CliRunner().invoke(cli.cli, ["drops", "--list-reasons"])
    assert result.exit_code == 0, result.output
    names = result.stdout.split()
    assert "NO_SOCKET" in names
    assert names == sorted(names)
    for hidden in ("SKB_CONSUMED", "CONSUMED", "NOT_DROPPED_YET", "SUBSYS_MASK"):
        assert hidden not in names


def test_list_reasons_without_kernel_btf_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_btf() -> Any:
        raise libbpf.LibbpfError(2, "load kernel BTF: No such file or directory")

    monkeypatch.setattr(node, "load_reason_table", no_btf)
    result = CliRunner().invoke(cli.cli, ["drops", "--list-reasons"])
    assert result.exit_code == exitcodes.UNSUPPORTED
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "BTF" in result.stderr


def test_usage_errors_are_click_usage_errors() -> None:
    with pytest.raises(click.UsageError):
        cli.cli.main(["drops"], standalone_mode=False)


def test_bare_command_prints_help_not_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == exitcodes.USAGE
    err = capsys.readouterr().err
    assert err.startswith("Usage: kubectl-bpf") and "error:" not in err
