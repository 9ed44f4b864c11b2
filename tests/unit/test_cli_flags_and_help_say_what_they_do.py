"""The command line promises only what it does: help text without markup
leaking, whole command descriptions, no flag that is accepted and ignored,
durations with a ceiling that holds, and Ctrl-C that works from the first
instant even where the shell started us with SIGINT ignored."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

from kubectl_bpf.cli import root as cli
from kubectl_bpf.protocol import exitcodes
from tests.unit import api_servers

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    captured = capsys.readouterr()
    assert isinstance(caught.value.code, int)
    return caught.value.code, captured.out, captured.err


@pytest.mark.parametrize("command", ["drops", "tcp", "policy-test"])
def test_command_help_shows_no_literal_backslash_b(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main([command, "--help"], capsys)
    assert code == 0
    assert "\\b" not in out and "\b" not in out
    assert "TARGET is POD" in out or "Offline:" in out


def test_group_help_gives_every_description_whole(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    assert "..." not in out.split("Commands:")[1]
    assert "evidence of every surprise" in " ".join(out.split())


@pytest.mark.parametrize("command", [["list"], ["gc"], ["setup", "--print"]], ids=" ".join)
def test_commands_without_targets_offer_no_namespace_flag(command: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main([command[0], "--help"], capsys)
    assert code == 0
    assert "--namespace" not in out and "-n," not in out
    assert "--job-namespace" in out
    code, _, err = run_main([*command, "-n", "shop"], capsys)
    assert code == exitcodes.USAGE
    assert "No such option '-n'" in err and len(err.splitlines()) == 1


def test_duration_longer_than_max_duration_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["drops", "web", "--max-duration", "1m", "--duration", "2h", "--dry-run"],
                              capsys)
    assert code == exitcodes.USAGE
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "--duration 7200s is longer than --max-duration 60s" in err


@pytest.mark.parametrize("flag", ["--duration", "--max-duration", "--lease-ttl", "--request-timeout"])
def test_absurd_durations_are_one_usage_line(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["drops", "web", flag, "99999999999h", "--dry-run"], capsys)
    assert code == exitcodes.USAGE
    assert out == ""
    assert len(err.splitlines()) == 1 and "longer than the limit of 168h" in err, err


@pytest.fixture
def silent() -> Iterator[api_servers.Server]:
    server = api_servers.Server("silent")
    yield server
    server.close()


def test_sigint_stops_a_client_started_with_sigint_ignored(silent: api_servers.Server,
                                                           tmp_path: pathlib.Path) -> None:
    config = api_servers.kubeconfig(tmp_path / "config", silent.url)
    env = {**os.environ, "KUBECONFIG": str(config), "PYTHONPATH": str(REPO)}
    # trap '' INT is what bash does to `cmd &` without job control; exec keeps the SIG_IGN.
    main = "from kubectl_bpf.cli import root; root.main()"
    script = f"trap '' INT; exec {sys.executable} -c '{main}' drops web"
    process = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 20
        while not silent._open and time.monotonic() < deadline:  # blocked on the silent server
            time.sleep(0.05)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == exitcodes.INTERRUPTED, err
    assert "interrupted" in err and "Traceback" not in err
    assert took < 5


@pytest.mark.parametrize("junit", ["/nonexistent-dir/report.xml", "{tmp}"], ids=["no-dir", "a-directory"])
def test_an_unwritable_junit_path_is_refused_before_the_cluster_is_asked(
        junit: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The API server here refuses every connection: exit 2, not 8, proves the
    path was checked first (it used to be found after every probe ran)."""
    config = api_servers.kubeconfig(tmp_path / "config", f"https://127.0.0.1:{api_servers.closed_port()}")
    monkeypatch.setenv("KUBECONFIG", str(config))
    path = junit.format(tmp=tmp_path)
    argv = ["policy-test", "--from", "x/a", "--to", "x/b", "--port", "80", "--junit", path]
    code, out, err = run_main(argv, capsys)
    assert code == exitcodes.USAGE, err
    assert out == "" and len(err.splitlines()) == 1 and f"--junit {path}" in err


def test_a_writable_junit_path_is_not_left_behind_by_the_check(tmp_path: pathlib.Path) -> None:
    from kubectl_bpf.gadgets.policy_test import command

    report = tmp_path / "report.xml"
    command.check_writable(str(report))
    assert not report.exists()
