"""dns.h and its twins in node.py agree on every size and field offset, as
the compiled dns.bpf.o's BTF records them, and the object holds a socket
filter (the one program type that needs no kprobe, tracefs or kernel read)."""

from __future__ import annotations

import pathlib
import re
from typing import Iterator

import pytest

from kubectl_bpf.agent import libbpf
from kubectl_bpf.gadgets.dns import node


@pytest.fixture
def btf() -> Iterator[libbpf.Btf]:
    parsed = libbpf.Btf.parse(node.OBJECT_PATH)
    yield parsed
    parsed.free()


def members(btf: libbpf.Btf, name: str) -> list[tuple[str, int]]:
    type_id = btf.find(name, libbpf.BTF_KIND_STRUCT)
    assert type_id > 0, f"struct {name} is not in the BTF of {node.OBJECT_PATH}"
    return [(member, bits // 8) for member, bits in btf.struct_members(type_id)]


def test_config_fields_are_where_the_agent_writes_them(btf: libbpf.Btf) -> None:
    twin = [(name, getattr(node.DnsConfig, name).offset) for name, _ in node.DnsConfig._fields_]
    assert members(btf, "dns_config") == twin


def test_counters_are_where_the_summary_reads_them(btf: libbpf.Btf) -> None:
    assert members(btf, "dns_counters") == [("packets", 0), ("snapped", 8), ("ignored", 16)]


def test_sizes_match_the_objects_btf_and_the_headers_static_asserts() -> None:
    obj = libbpf.Object(node.OBJECT_PATH)
    try:
        assert {name: obj.struct_size(name) for name in node.LAYOUT} == node.LAYOUT
        node.check_layout(obj)
    finally:
        obj.close()
    header = (pathlib.Path(node.OBJECT_PATH).parent / "dns.h").read_text()
    asserted = dict(re.findall(r"_Static_assert\(sizeof\(struct (\w+)\) == (\d+)", header))
    assert {name: int(size) for name, size in asserted.items()} == node.LAYOUT


def test_the_program_is_in_the_socket_section() -> None:
    source = (pathlib.Path(node.OBJECT_PATH).parent / "dns.bpf.c").read_text()
    assert re.search(r'SEC\("socket"\)\s*int ' + node.PROGRAM + r"\(struct __sk_buff", source)
    assert "bpf_probe_read" not in source and "BPF_CORE_READ" not in source
