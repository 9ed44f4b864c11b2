"""The ``PolicyTest`` file of ``policy-test -f``: named endpoints and the tests between them.

    apiVersion: kubectl-bpf.io/v1alpha1
    kind: PolicyTest
    defaults: {namespace: shop, attempts: 3, timeout: 2s}
    endpoints:
      client: {selector: {app: client}}          # pods of defaults.namespace (or namespace:)
      web:    {pod: shop/web}                    # one pod: [NS/]NAME
      dns:    {ip: 10.96.0.10}                   # an address
    tests:
    - {name: client-to-web, from: client, to: web, ports: [8080], expect: allow}
    - {name: web-to-dns, from: web, to: dns, ports: [53/UDP], expect: deny}

A test covers every pod of ``from`` to every pod (or the address) of ``to`` on every
port. ``expect`` is optional: when given, a differing computed expectation is an
INTENT-MISMATCH. Parsing only (pure): pods are matched by ``live_run``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any, cast

import yaml

from kubectl_bpf.gadgets.policy_test import queries, schema

API_VERSION = "kubectl-bpf.io/v1alpha1"
KIND = "PolicyTest"


class SpecFileError(ValueError):
    """The file is not a valid PolicyTest; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None = None
    selector: tuple[tuple[str, str], ...] | None = None
    pod: str | None = None  # [NS/]NAME
    ip: str | None = None


@dataclasses.dataclass(frozen=True)
class Test:
    name: str
    source: Endpoint
    destination: Endpoint
    ports: tuple[queries.PortSpec, ...]
    expect: schema.Expected | None


@dataclasses.dataclass(frozen=True)
class PolicyTestFile:
    tests: tuple[Test, ...]
    namespace: str | None = None
    attempts: int | None = None
    timeout: str | None = None  # a kubectl duration, parsed by the command


def load(text: str) -> PolicyTestFile:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecFileError(f"not valid YAML: {' '.join(str(exc).split())}") from exc
    root = _mapping(document, "the file")
    if root.get("kind") != KIND or root.get("apiVersion") != API_VERSION:
        raise SpecFileError(f"expected apiVersion: {API_VERSION} and kind: {KIND}")
    defaults = _mapping(root.get("defaults") or {}, "defaults")
    namespace = defaults.get("namespace")
    attempts = defaults.get("attempts")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
        raise SpecFileError(f"defaults.attempts: must be a positive integer, got {attempts!r}")
    timeout = defaults.get("timeout")
    endpoints = {str(name): _endpoint(str(name), value, namespace)
                 for name, value in _mapping(root.get("endpoints") or {}, "endpoints").items()}
    tests = []
    raw_tests = root.get("tests")
    if not isinstance(raw_tests, list) or not raw_tests:
        raise SpecFileError("tests: needs a non-empty list")
    for index, raw in enumerate(raw_tests):
        where = f"tests[{index}]"
        test = _mapping(raw, where)
        name = str(test.get("name") or f"test-{index}")
        source, destination = (_endpoint_ref(test.get(key), endpoints, f"{where}.{key}", namespace)
                               for key in ("from", "to"))
        if source.ip is not None:
            raise SpecFileError(f"{where}.from: probes start in a pod, not at an address")
        ports_raw = test.get("ports")
        if not isinstance(ports_raw, list) or not ports_raw:
            raise SpecFileError(f"{where}.ports: needs a non-empty list")
        try:
            ports = tuple(queries.parse_port_spec(str(port)) for port in ports_raw)
        except queries.PortSpecError as exc:
            raise SpecFileError(f"{where}.ports: {exc}") from exc
        expect = test.get("expect")
        if expect not in (None, "allow", "deny"):
            raise SpecFileError(f"{where}.expect: must be allow or deny, got {expect!r}")
        tests.append(Test(name, source, destination, ports, cast(schema.Expected | None, expect)))
    return PolicyTestFile(tuple(tests), namespace=None if namespace is None else str(namespace),
                          attempts=attempts, timeout=None if timeout is None else str(timeout))


def _endpoint_ref(value: object, endpoints: Mapping[str, Endpoint], where: str,
                  namespace: object) -> Endpoint:
    """A name from ``endpoints``, or an inline endpoint."""
    if isinstance(value, str):
        if value not in endpoints:
            raise SpecFileError(f"{where}: no endpoint named {value!r}")
        return endpoints[value]
    return _endpoint(where, value, namespace)


def _endpoint(name: str, value: object, namespace: object) -> Endpoint:
    raw = _mapping(value, f"endpoints.{name}")
    given = [key for key in ("selector", "pod", "ip") if key in raw]
    if len(given) != 1:
        raise SpecFileError(f"endpoints.{name}: needs exactly one of selector, pod, ip")
    endpoint_namespace = raw.get("namespace", namespace)
    if "ip" in raw:
        try:
            return Endpoint(name, ip=str(ipaddress.ip_address(str(raw["ip"]))))
        except ValueError as exc:
            raise SpecFileError(f"endpoints.{name}.ip: {raw['ip']!r} is not an IP address") from exc
    if "pod" in raw:
        return Endpoint(name, namespace=None if endpoint_namespace is None else str(endpoint_namespace),
                        pod=str(raw["pod"]))
    labels = _mapping(raw["selector"] or {}, f"endpoints.{name}.selector")
    return Endpoint(name, namespace=None if endpoint_namespace is None else str(endpoint_namespace),
                    selector=tuple(sorted((str(k), str(v)) for k, v in labels.items())))


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecFileError(f"{where}: expected a mapping")
    return cast(Mapping[str, Any], value)
