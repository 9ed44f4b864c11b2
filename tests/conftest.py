"""Test tiers: unit tests always run; agent tests load real BPF programs and
run only with --with-agent (as root, on a kernel with BTF).

A skipped tier is said loudly in the summary. With --with-agent, a missing
prerequisite is a failure, not a skip: CI passes the flag, so it can never
go green by skipping the kernel tests.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--with-agent", action="store_true",
                     help="run tests that load BPF programs into this kernel (root, BTF)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--with-agent"):
        return
    skip = pytest.mark.skip(reason="AGENT TIER NOT RUN: needs --with-agent (root, BTF); CI runs it")
    for item in items:
        if "agent" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _agent_prerequisites(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--with-agent"):
        return
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        missing.append("kernel BTF (/sys/kernel/btf/vmlinux)")
    if missing:
        pytest.fail(f"--with-agent given but {', '.join(missing)} missing", pytrace=False)
