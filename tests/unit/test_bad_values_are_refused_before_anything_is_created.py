"""Bad values are refused on the client, in one line with exit 2, before the
cluster is even asked: the kubeconfig points at a recording server, and it
must see no request at all."""

from __future__ import annotations

import pathlib
import re
from typing import Iterator

import pytest

from kubectl_bpf.cli import root as cli
from kubectl_bpf.gadgets.drops import known_reasons
from kubectl_bpf.protocol import exitcodes
from tests.unit import api_servers

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def recording(tmp_path: pathlib.Path) -> Iterator[tuple[api_servers.Server, pathlib.Path]]:
    cert, key, _ = api_servers.make_ca(tmp_path, "server")
    server = api_servers.Server("unauthorized", tls=(cert, key))
    yield server, api_servers.kubeconfig(tmp_path / "config", server.url)
    server.close()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert isinstance(caught.value.code, int)
    return caught.value.code, captured.err


@pytest.mark.parametrize(("reason", "suggested"), [("NO_SOCKT", "NO_SOCKET"), ("no_socket", "NO_SOCKET"),
                                                   ("NETFILTER", "NETFILTER_DROP"), ("BOGUS", None)])
def test_an_unknown_drop_reason_is_refused_with_the_closest_names(
        reason: str, suggested: str | None, recording: tuple[api_servers.Server, pathlib.Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    server, config = recording
    code, err = run_main(["drops", "shop/web", "--reason", "NO_SOCKET", "--reason", reason,
                          "--kubeconfig", str(config)], capsys)
    assert code == exitcodes.USAGE
    assert len(err.splitlines()) == 1 and f"unknown drop reason {reason!r}" in err
    if suggested:
        assert f"did you mean {suggested}" in err
    assert server.requests == []  # no Job, not even a pod read


@pytest.mark.parametrize("port", ["0", "70000", "80/XYZ", "80-90", "80:90", "Http"])
def test_a_malformed_port_is_refused_before_the_cluster_is_asked(
        port: str, recording: tuple[api_servers.Server, pathlib.Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    server, config = recording
    code, err = run_main(["policy-test", "--from", "shop/a", "--to", "shop/b", "--port", port,
                          "--kubeconfig", str(config)], capsys)
    assert code == exitcodes.USAGE
    assert len(err.splitlines()) == 1 and f"bad port {port!r}" in err
    assert server.requests == []
    # A well-formed name no destination declares ("abc") needs the pods: see
    # test_a_named_port_the_destination_lacks_is_refused_before_any_probe.


def test_every_reason_of_the_pinned_kernel_headers_is_known() -> None:
    """The list may only lag behind a kernel newer than the pinned vmlinux.h."""
    header = (REPO / "kubectl_bpf/bpf/vmlinux/x86/vmlinux_618.h").read_text(encoding="utf-8")
    enum = header[header.index("enum skb_drop_reason {"):]
    enum = enum[:enum.index("};")]
    names = set(re.findall(r"SKB_DROP_REASON_([A-Z0-9_]+)", enum)) - {"MAX", "SUBSYS_MASK"}
    assert len(names) > 100
    assert names <= known_reasons.names()
