"""Every failure to reach or trust the API server, for every command: one
line on stderr naming the server and the cause, exit code UNREACHABLE (8),
no traceback, no library warning, and nothing created on the server.

The servers are real loopback sockets (tests/unit/api_servers.py); the
plugin's whole HTTP stack runs against them.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Iterator

import pytest

from kubectl_bpf.cli import completion
from kubectl_bpf.cli import root as cli
from kubectl_bpf.kube import transport
from kubectl_bpf.protocol import exitcodes
from tests.unit import api_servers

REPO = pathlib.Path(__file__).resolve().parents[2]

COMMANDS = [
    ["drops", "web"],
    ["drops", "deploy/web", "--count", "1"],
    ["tcp", "web"],  # a gadget that came later: the guard in root.py covers it unchanged
    ["policy-test", "--from", "shop/a", "--to", "shop/b", "--port", "80"],
    ["policy-test", "-n", "shop"],
    ["list"],
    ["gc", "--all"],
    ["setup", "--apply"],
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[pathlib.Path, pathlib.Path, bytes]]:
    tmp = tmp_path_factory.mktemp("ca")
    return {"server": api_servers.make_ca(tmp, "server"), "other": api_servers.make_ca(tmp, "other")}


@pytest.fixture
def silent() -> Iterator[api_servers.Server]:
    server = api_servers.Server("silent")
    yield server
    server.close()


@pytest.fixture
def rejecting(certs: dict[str, tuple[pathlib.Path, pathlib.Path, bytes]]) -> Iterator[api_servers.Server]:
    cert, key, _ = certs["server"]
    server = api_servers.Server("unauthorized", tls=(cert, key))
    yield server
    server.close()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    captured = capsys.readouterr()
    assert isinstance(caught.value.code, int)
    return caught.value.code, captured.out, captured.err


def assert_unreachable(code: int, out: str, err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kubectl-bpf: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err
    assert "Traceback" not in err and "Warning" not in err
    assert code == exitcodes.UNREACHABLE == 8
    assert out == ""


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_refused_connection_names_the_server(argv: list[str], tmp_path: pathlib.Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://127.0.0.1:{api_servers.closed_port()}"
    config = api_servers.kubeconfig(tmp_path / "config", url)
    code, out, err = run_main([*argv, "--kubeconfig", str(config)], capsys)
    assert_unreachable(code, out, err, f"cannot reach the API server {url} (connection refused)",
                       "is the context right?")


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_server_that_never_answers_times_out_with_request_timeout(
        argv: list[str], silent: api_servers.Server, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = api_servers.kubeconfig(tmp_path / "config", silent.url)
    code, out, err = run_main([*argv, "--kubeconfig", str(config), "--request-timeout", "0.5s"], capsys)
    assert_unreachable(code, out, err, f"no answer from the API server {silent.url} in time")


def test_a_server_that_never_answers_times_out_without_request_timeout(
        silent: api_servers.Server, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(transport, "CONNECT_TIMEOUT_S", 0.5)  # the default, shortened for the test
    monkeypatch.setattr(transport, "DEFAULT_TIMEOUT_S", 0.5)
    config = api_servers.kubeconfig(tmp_path / "config", silent.url)
    code, out, err = run_main(["drops", "web", "--kubeconfig", str(config)], capsys)
    assert_unreachable(code, out, err, silent.url, "in time")


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_certificate_of_another_ca_is_not_trusted(
        argv: list[str], certs: dict[str, tuple[pathlib.Path, pathlib.Path, bytes]],
        rejecting: api_servers.Server, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = api_servers.kubeconfig(tmp_path / "config", rejecting.url, ca_pem=certs["other"][2])
    code, out, err = run_main([*argv, "--kubeconfig", str(config)], capsys)
    assert_unreachable(code, out, err, f"cannot trust the API server {rejecting.url}",
                       "certificate verify failed", "certificate-authority")
    assert rejecting.requests == []  # not one request left the client


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_rejected_token_is_one_line_without_tls_warnings(
        argv: list[str], rejecting: api_servers.Server, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = api_servers.kubeconfig(tmp_path / "config", rejecting.url)  # insecure-skip-tls-verify
    code, out, err = run_main([*argv, "--kubeconfig", str(config)], capsys)
    assert_unreachable(code, out, err, f"the API server {rejecting.url} rejects the kubeconfig's credentials",
                       "401")
    assert rejecting.requests, "the server was asked"
    # Nothing created: the only writes are permission reviews (never stored), sent
    # together before anything else; setup --apply's first create is its one write.
    writes = [line for line in rejecting.writes() if "/selfsubjectaccessreviews " not in line]
    assert len(writes) <= (1 if argv[0] == "setup" else 0), rejecting.requests


@pytest.mark.parametrize("content", [b"{[", b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe", b"- just\n- a list\n"],
                         ids=["not-yaml", "binary", "not-a-kubeconfig"])
@pytest.mark.parametrize("argv", [["drops", "web"], ["list"], ["policy-test", "-n", "shop"]], ids=" ".join)
def test_an_unreadable_kubeconfig_is_one_line(argv: list[str], content: bytes, tmp_path: pathlib.Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config"
    config.write_bytes(content)
    code, out, err = run_main([*argv, "--kubeconfig", str(config)], capsys)
    assert_unreachable(code, out, err, str(config))


def test_completion_says_the_same_line_and_code(tmp_path: pathlib.Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://127.0.0.1:{api_servers.closed_port()}"
    config = api_servers.kubeconfig(tmp_path / "config", url)
    with pytest.raises(SystemExit) as caught:
        completion.main(["__complete", "drops", "--kubeconfig", str(config), "we"])
    captured = capsys.readouterr()
    assert caught.value.code == exitcodes.UNREACHABLE
    assert captured.out == ":1\n"  # Cobra's error directive: the shell offers nothing
    assert_unreachable(exitcodes.UNREACHABLE, "", captured.err, url, "connection refused")


def test_a_real_process_prints_no_traceback_and_no_warning(rejecting: api_servers.Server,
                                                           tmp_path: pathlib.Path) -> None:
    """As a user runs it: no pytest warning filters, the interpreter's own defaults."""
    config = api_servers.kubeconfig(tmp_path / "config", rejecting.url)
    argv = [sys.executable, "-m", "kubectl_bpf", "drops", "web", "--kubeconfig", str(config)]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert_unreachable(result.returncode, result.stdout, result.stderr, "401")


@pytest.mark.parametrize(("request_timeout", "connect"), [(None, 10.0), (3.0, 3.0), (60.0, 10.0)])
def test_watches_and_log_streams_connect_within_the_request_timeout(
        request_timeout: float | None, connect: float, tmp_path: pathlib.Path) -> None:
    """Their reads wait for events by design (bounded windows in watch.py and
    logs.py); reaching the server is what --request-timeout bounds."""
    from kubectl_bpf.kube import client

    config = api_servers.kubeconfig(tmp_path / "config", "https://127.0.0.1:1")
    kube = client.connect(client.KubeOptions(kubeconfig=str(config), request_timeout_s=request_timeout))
    assert kube.connect_timeout_s() == connect
