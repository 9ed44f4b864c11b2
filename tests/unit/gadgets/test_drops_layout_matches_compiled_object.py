"""drops.h and its Python twins in node.py agree on every size and every
field offset, as the compiled drops.bpf.o's BTF records them."""

from __future__ import annotations

import ctypes
import pathlib
import re
import struct
from typing import Iterator

import pytest

from kubectl_bpf.agent import errors, libbpf
from kubectl_bpf.gadgets.drops import node

# C member names in declaration order, as node.Decoder.decode unpacks them.
EVENT_FIELDS = ("ts_ns", "location", "reason", "netns", "ifindex", "iif", "len", "ethertype", "ip_proto",
                "match", "saddr", "daddr", "sport", "dport", "has_ports", "family", "flags", "pad",
                "ifname")
FLOW_FIELDS = ("saddr", "daddr", "dport", "ip_proto", "family", "reason")
COUNTER_FIELDS = ("seen", "emitted", "lost", "suppressed", "flow_overflow")


def offsets_of(layout: struct.Struct) -> list[int]:
    """Byte offset of each item of a struct format ("2x" padding counts as one)."""
    order, body = layout.format[0], layout.format[1:]
    offsets, prefix = [], ""
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", body):
        if code not in "sx" and count:  # "5Q": five items
            for i in range(int(count)):
                offsets.append(struct.calcsize(order + prefix + code * i))
        else:
            offsets.append(struct.calcsize(order + prefix))
        prefix += count + code
    return offsets


@pytest.fixture(scope="module")
def btf() -> Iterator[libbpf.Btf]:
    parsed = libbpf.Btf.parse(node.OBJECT_PATH)
    yield parsed
    parsed.free()


@pytest.fixture
def drops_object() -> Iterator[libbpf.Object]:
    obj = libbpf.Object(node.OBJECT_PATH)
    yield obj
    obj.close()


def members(btf: libbpf.Btf, name: str) -> list[tuple[str, int]]:
    type_id = btf.find(name, libbpf.BTF_KIND_STRUCT)
    assert type_id > 0, f"struct {name} is not in the BTF of {node.OBJECT_PATH}"
    return [(member, bits // 8) for member, bits in btf.struct_members(type_id)]


def test_offsets_helper_reads_struct_formats() -> None:
    assert offsets_of(struct.Struct("<QI2xH4s")) == [0, 8, 12, 14, 16]
    assert offsets_of(struct.Struct("<3Q")) == [0, 8, 16]


def test_event_format_is_the_documented_one() -> None:
    assert node.EVENT.format == "<QQIIIIIHBB16s16sHHBBBx16s"


def test_every_drop_event_field_is_where_the_decoder_reads_it(btf: libbpf.Btf) -> None:
    assert members(btf, "drop_event") == list(zip(EVENT_FIELDS, offsets_of(node.EVENT)))


def test_every_drop_flow_field_is_where_the_decoder_reads_it(btf: libbpf.Btf) -> None:
    assert members(btf, "drop_flow") == list(zip(FLOW_FIELDS, offsets_of(node.FLOW)))


def test_every_counter_is_where_the_summary_reads_it(btf: libbpf.Btf) -> None:
    assert members(btf, "drops_counters") == list(zip(COUNTER_FIELDS, offsets_of(node.COUNTERS)))


def test_every_config_field_is_where_the_agent_writes_it(btf: libbpf.Btf) -> None:
    twin = [(name, getattr(node.DropsConfig, name).offset) for name, _ in node.DropsConfig._fields_]
    assert members(btf, "drops_config") == twin


def test_every_location_field_is_where_the_agent_writes_it(btf: libbpf.Btf) -> None:
    twin = [(name, getattr(node.DropsLocation, name).offset) for name, _ in node.DropsLocation._fields_]
    assert members(btf, "drops_location") == twin
    assert len(node.DropsConfig().locations) == node.MAX_LOCATIONS


@pytest.mark.parametrize("struct_name", sorted(node.LAYOUT))
def test_struct_sizes_match_the_objects_btf(drops_object: libbpf.Object, struct_name: str) -> None:
    assert drops_object.struct_size(struct_name) == node.LAYOUT[struct_name]


def test_struct_sizes_match_the_headers_static_asserts() -> None:
    header = (pathlib.Path(node.OBJECT_PATH).parent / "drops.h").read_text()
    asserted = dict(re.findall(r"_Static_assert\(sizeof\(struct (\w+)\) == (\d+)", header))
    assert {name: int(size) for name, size in asserted.items()} == node.LAYOUT
    assert f"#define DROPS_MAX_LOCATIONS {node.MAX_LOCATIONS}\n" in header


def test_event_size_is_the_objects_drop_event(drops_object: libbpf.Object) -> None:
    assert drops_object.struct_size("drop_event") == node.EVENT.size == 96


def test_check_layout_accepts_the_shipped_object(drops_object: libbpf.Object) -> None:
    node.check_layout(drops_object)


def test_check_layout_refuses_a_mismatch_naming_the_struct(drops_object: libbpf.Object,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(node.LAYOUT, "drop_flow", node.FLOW.size + 8)
    with pytest.raises(errors.AgentError) as caught:
        node.check_layout(drops_object)
    assert "drop_flow" in str(caught.value) and "40" in str(caught.value) and "48" in str(caught.value)


def test_check_layout_refuses_an_object_without_the_struct(drops_object: libbpf.Object,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(node.LAYOUT, "drop_gone", 8)
    with pytest.raises(errors.AgentError, match="drop_gone"):
        node.check_layout(drops_object)


def test_rodata_holds_exactly_the_config(drops_object: libbpf.Object) -> None:
    assert len(drops_object.map(".rodata").initial_value()) == ctypes.sizeof(node.DropsConfig) == 408


def test_counters_map_value_is_one_counters_struct_per_cpu(drops_object: libbpf.Object) -> None:
    counters = drops_object.map("counters")
    assert counters.value_size == node.COUNTERS.size
    assert counters.lookup_size == (node.COUNTERS.size + 7) // 8 * 8 * libbpf.num_possible_cpus()


def test_filter_map_keys_are_what_the_agent_writes(drops_object: libbpf.Object) -> None:
    assert drops_object.map("netns_filter").key_size == struct.calcsize("<I")
    assert drops_object.map("ip_filter").key_size == len(node.addr_key("10.0.0.1"))
    assert drops_object.map("reason_filter").key_size == struct.calcsize("<I")
    assert drops_object.map("flow_counts").key_size == node.FLOW.size


def test_every_hook_variant_is_a_program_of_the_object(drops_object: libbpf.Object) -> None:
    for variant in node.ALL_VARIANTS:
        assert drops_object.program(variant.program).name == variant.program
