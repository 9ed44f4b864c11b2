"""The PolicyTest file of ``policy-test -f``: endpoints, tests, defaults, one-line errors."""

from __future__ import annotations

import pytest

from kubectl_bpf.gadgets.policy_test import queries, spec_file

HEAD = "apiVersion: kubectl-bpf.io/v1alpha1\nkind: PolicyTest\n"


def test_named_and_inline_endpoints_with_defaults() -> None:
    document = spec_file.load(HEAD + """
defaults: {namespace: shop, attempts: 2, timeout: 1s}
endpoints:
  client: {selector: {app: client}}
  web: {pod: other/web}
tests:
- {name: c2w, from: client, to: web, ports: [8080, 53/udp], expect: allow}
- {from: client, to: {ip: 192.0.2.1}, ports: [443]}
""")
    assert (document.namespace, document.attempts, document.timeout) == ("shop", 2, "1s")
    first, second = document.tests
    assert first.source == spec_file.Endpoint("client", namespace="shop", selector=(("app", "client"),))
    assert first.destination.pod == "other/web"
    assert first.ports == (queries.PortSpec(8080, "TCP"), queries.PortSpec(53, "UDP"))
    assert (first.expect, second.expect, second.name) == ("allow", None, "test-1")
    assert second.destination.ip == "192.0.2.1"


@pytest.mark.parametrize(("body", "message"), [
    ("tests: []", "tests: needs a non-empty list"),
    ("tests: [{from: nobody, to: x, ports: [80]}]", "tests[0].from: no endpoint named 'nobody'"),
    ("endpoints: {a: {pod: a}}\ntests: [{from: a, to: a, ports: [80], expect: maybe}]",
     "tests[0].expect: must be allow or deny"),
    ("endpoints: {a: {pod: a, ip: 10.0.0.1}}\ntests: [{from: a, to: a, ports: [80]}]",
     "endpoints.a: needs exactly one of selector, pod, ip"),
    ("endpoints: {a: {ip: 10.0.0.1}}\ntests: [{from: a, to: a, ports: [80]}]",
     "tests[0].from: probes start in a pod"),
])
def test_invalid_files_are_refused_naming_the_field(body: str, message: str) -> None:
    with pytest.raises(spec_file.SpecFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec_file.load(HEAD + body)


def test_another_kind_is_refused() -> None:
    with pytest.raises(spec_file.SpecFileError, match="kind: PolicyTest"):
        spec_file.load("kind: List\n")
