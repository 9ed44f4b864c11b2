from __future__ import annotations

from typing import Iterator

import pytest

from tests.agent import netlab, tracer

pytestmark = pytest.mark.agent

TARGET_V4, TARGET_V6 = "10.231.2.2", "fd00:231:2::2"
CLIENT_V4, CLIENT_V6 = "10.231.2.1", "fd00:231:2::1"


@pytest.fixture
def lab() -> Iterator[netlab.Lab]:
    lab = netlab.Lab()
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def pair(lab: netlab.Lab) -> tuple[netlab.Netns, netlab.Netns]:
    """client <-veth-> target, both address families."""
    client, target = lab.netns("client"), lab.netns("target")
    lab.link(client, [f"{CLIENT_V4}/24", f"{CLIENT_V6}/64"], target, [f"{TARGET_V4}/24", f"{TARGET_V6}/64"])
    return client, target


@pytest.fixture
def tracers() -> Iterator[list[tracer.Tracer]]:
    """Tracers started by a test are killed even when it fails midway."""
    started: list[tracer.Tracer] = []
    yield started
    for running in started:
        running.kill()


@pytest.fixture
def trace(tracers: list[tracer.Tracer]):  # type: ignore[no-untyped-def]
    def start(*args: str, gadget: str = "drops") -> tracer.Tracer:
        running = tracer.Tracer(*args, gadget=gadget)
        tracers.append(running)
        return running.ready()
    return start
