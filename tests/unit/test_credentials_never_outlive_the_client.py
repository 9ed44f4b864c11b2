"""The kubeconfig's client key, certificate and CA never reach the disk: the
client library would write them to the temp dir and remove them only at
exit, so a SIGKILL (or a second Ctrl-C during that exit) left the private
key in /tmp. Here they live in memory files that die with the process."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest
from kubernetes.config import kube_config

from kubectl_bpf.cli import root as cli
from kubectl_bpf.kube import client
from kubectl_bpf.protocol import exitcodes
from tests.unit import api_servers

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def server_and_config(tmp_path: pathlib.Path) -> Iterator[tuple[api_servers.Server, pathlib.Path]]:
    cert, key, ca_pem = api_servers.make_ca(tmp_path, "cluster")
    server = api_servers.Server("silent")
    yield server, api_servers.kubeconfig(tmp_path / "config", server.url, ca_pem=ca_pem, client=(cert, key))
    server.close()


def start_client(config: pathlib.Path, temp_dir: pathlib.Path) -> subprocess.Popen[str]:
    env = dict(os.environ, TMPDIR=str(temp_dir))
    argv = [sys.executable, "-m", "kubectl_bpf", "drops", "web", "--kubeconfig", str(config)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=env)


def test_the_library_still_looks_up_the_function_we_replace() -> None:
    assert kube_config._create_temp_file_with_content is client._memory_file


@pytest.mark.parametrize("stop", ["SIGKILL", "double Ctrl-C"])
def test_no_credential_file_is_left_in_the_temp_dir(stop: str, tmp_path: pathlib.Path,
                                                    server_and_config: tuple[api_servers.Server, pathlib.Path]
                                                    ) -> None:
    server, config = server_and_config
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    process = start_client(config, temp_dir)
    try:
        server.wait_for_connection(timeout_s=30)  # the kubeconfig was loaded, credentials in hand
        if stop == "SIGKILL":
            process.kill()
        else:
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert list(temp_dir.iterdir()) == []
    if stop != "SIGKILL":
        assert "Traceback" not in err and "Exception ignored" not in err, err


def test_client_certificates_from_memory_still_make_a_tls_connection(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key, ca_pem = api_servers.make_ca(tmp_path, "cluster")
    server = api_servers.Server("unauthorized", tls=(cert, key))
    try:
        config = api_servers.kubeconfig(tmp_path / "config", server.url, ca_pem=ca_pem, client=(cert, key))
        with pytest.raises(SystemExit) as caught:
            cli.main(["list", "--kubeconfig", str(config)])
    finally:
        server.close()
    assert caught.value.code == exitcodes.UNREACHABLE
    assert "rejects the kubeconfig's credentials" in capsys.readouterr().err  # TLS worked: HTTP answered
    assert server.requests
