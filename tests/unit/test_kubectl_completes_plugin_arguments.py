"""kubectl's plugin completion protocol (``kubectl_complete-bpf __complete
ARGS... INCOMPLETE``): candidates one per line, then Cobra's directive."""

from __future__ import annotations

import types
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from kubectl_bpf.cli import completion
from kubectl_bpf.kube import targets


def test_commands_options_and_choices_complete() -> None:
    assert completion.candidates([""]) == ["drops", "policy-test", "tcp", "dns", "list", "gc", "setup"]
    assert completion.candidates(["drops", "--rea"]) == ["--reason"]
    assert completion.candidates(["drops", "-o", "w"]) == ["wide"]


def test_protocol_ends_with_the_no_file_directive(capsys: pytest.CaptureFixture[str]) -> None:
    completion.main(["__complete", "po"])
    assert capsys.readouterr().out == "policy-test\n:4\n"


def names(*items: str) -> Any:
    return types.SimpleNamespace(items=[types.SimpleNamespace(metadata=types.SimpleNamespace(name=n))
                                        for n in items])


class FakeKube:
    namespace = "shop"

    def __init__(self, fail: bool = False) -> None:
        def pods(namespace: str, **_: Any) -> Any:
            if fail:
                raise ApiException(status=403)
            assert namespace == "shop"
            return names("web-1", "web-2", "db-0")

        self.core = types.SimpleNamespace(list_namespaced_pod=pods, list_node=lambda **_: names("n1", "n2"))
        self.apps = types.SimpleNamespace(list_namespaced_deployment=lambda ns, **_: names("web", "api"))


def test_pod_names_and_kind_prefixed_names_complete() -> None:
    kube: Any = FakeKube()
    assert targets.complete_reference(kube, "we") == ["web-1", "web-2"]
    assert targets.complete_reference(kube, "deploy/a") == ["deploy/api"]
    assert targets.complete_reference(kube, "node/") == ["node/n1", "node/n2"]
    assert targets.complete_reference(kube, "secret/x") == []


def test_an_api_failure_offers_nothing_instead_of_an_error() -> None:
    kube: Any = FakeKube(fail=True)
    assert targets.complete_reference(kube, "w") == []
