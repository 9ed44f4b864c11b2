"""Test tiers: unit tests always run; agent tests load real BPF programs and
run only with --with-agent (as root, on a kernel with BTF); e2e tests drive
the plugin against the real local cluster (hack/local-cluster) and run only
with --with-e2e.

A skipped tier is said loudly in the summary. With a tier's flag, a missing
prerequisite is a failure, not a skip: CI passes both flags, so it can never
go green by skipping the kernel or the cluster tests.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--with-agent", action="store_true",
                     help="run tests that load BPF programs into this kernel (root, BTF)")
    parser.addoption("--with-e2e", action="store_true",
                     help="run the end-to-end tests on the local cluster (brought up if needed)")
    parser.addoption("--with-multinode", action="store_true",
                     help="run the e2e tests that need hack/local-cluster up --nodes 3")
    parser.addoption("--keep-cluster", action="store_true",
                     help="leave the local cluster up after the e2e tests (faster reruns)")


TIERS = {
    "agent": ("--with-agent", "AGENT TIER NOT RUN: needs --with-agent (root, BTF); CI runs it"),
    "e2e": ("--with-e2e", "E2E TIER NOT RUN: needs --with-e2e (root, local cluster); CI runs it"),
    "multinode": ("--with-multinode", "MULTINODE TIER NOT RUN: needs --with-multinode and "
                  "hack/local-cluster up --nodes 3; CI runs it"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, (flag, reason) in TIERS.items():
        if config.getoption(flag):
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
    # The cluster tier last: the quick tiers report first.
    items.sort(key=lambda item: "e2e" in item.keywords)


@pytest.fixture(scope="session", autouse=True)
def _agent_prerequisites(request: pytest.FixtureRequest) -> None:
    if not (request.config.getoption("--with-agent") or request.config.getoption("--with-e2e")):
        return
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        missing.append("kernel BTF (/sys/kernel/btf/vmlinux)")
    if missing:
        pytest.fail(f"--with-agent/--with-e2e given but {', '.join(missing)} missing", pytrace=False)
