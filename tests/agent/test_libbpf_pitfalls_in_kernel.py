"""libbpf binding pitfalls that need a loaded object (field notes §2)."""

from __future__ import annotations

import socket
import time

import pytest

from kubectl_bpf.agent import errors, libbpf, loader
from kubectl_bpf.gadgets.drops import modes, node
from tests.agent import kernel

pytestmark = pytest.mark.agent


def this_kernels_program() -> tuple[loader.Variant, ...]:
    """The program the agent attaches here: a probe-read one, or under lockdown a direct-read one."""
    return tuple(v for v in node.ALL_VARIANTS if v.program == kernel.running().program)


def whole_host(obj: libbpf.Object) -> None:
    node.check_layout(obj)


def nothing(obj: libbpf.Object) -> None:
    pass


def provoke_drop() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("127.0.0.1", 9))


def test_exception_in_ring_buffer_callback_is_reraised_after_poll():
    attached = loader.attach_first(node.OBJECT_PATH, this_kernels_program(), configure=whole_host,
                                   populate=nothing)

    class Boom(Exception):
        pass

    def explode(_data: int, _size: int) -> None:
        raise Boom()

    ring = libbpf.RingBuffer(attached.obj.map("events"), explode)
    try:
        provoke_drop()
        with pytest.raises(Boom):
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                ring.poll(50)
                ring.consume()
    finally:
        ring.free()
        attached.close()


def test_refused_hook_falls_back_to_the_next_variant(monkeypatch):
    # Under lockdown the probe-read variants cannot load: there the fallback is locked -> bare.
    first, second = node.VARIANTS[:2] if kernel.running().reads == modes.READS_PROBE else node.LOCKED_VARIANTS
    original = libbpf.Program.attach

    def refuse_first(self: libbpf.Program) -> libbpf.Link:
        if self.name == first.program:
            raise libbpf.LibbpfError(95, f"attach {self.name}: refused for the test")
        return original(self)

    monkeypatch.setattr(libbpf.Program, "attach", refuse_first)
    attached = loader.attach_first(node.OBJECT_PATH, (first, second), configure=whole_host,
                                   populate=nothing)
    try:
        assert (attached.program.name, attached.hook) == (second.program, second.hook)
        assert attached.info().prog_id > 0
    finally:
        attached.close()


def test_all_hooks_refused_is_one_unsupported_error_naming_each(monkeypatch):
    def refuse(self: libbpf.Program) -> libbpf.Link:
        raise libbpf.LibbpfError(95, f"attach {self.name}: refused for the test")

    monkeypatch.setattr(libbpf.Program, "attach", refuse)
    with pytest.raises(errors.UnsupportedError) as raised:
        loader.attach_first(node.OBJECT_PATH, node.VARIANTS[:2], configure=whole_host, populate=nothing)
    assert "tp_btf/kfree_skb" in str(raised.value) and "raw_tp/kfree_skb" in str(raised.value)


def test_percpu_counters_are_summed_over_every_possible_cpu():
    attached = loader.attach_first(node.OBJECT_PATH, this_kernels_program(), configure=whole_host,
                                   populate=nothing)
    try:
        counters = attached.obj.map("counters")
        assert counters.lookup_size == 40 * libbpf.num_possible_cpus()
        before = node.sum_percpu(counters.lookup(b"\0\0\0\0") or b"", 5)[0]
        for _ in range(3):
            provoke_drop()
        after = node.sum_percpu(counters.lookup(b"\0\0\0\0") or b"", 5)[0]
        assert after - before >= 3
    finally:
        attached.close()
