"""The ctypes binding to libbpf.so.1, without root: opening objects and
reading BTF need no privileges, and they exercise the pitfalls of field
notes §2 (errno handling, the va_list print callback and its lifetime,
pointer return types, per-CPU sizes, BTF member offsets)."""

from __future__ import annotations

import ctypes
import errno
import gc
import pathlib
from typing import Iterator

import pytest

from kubectl_bpf.agent import libbpf
from kubectl_bpf.gadgets.drops import node

# libbpf's own error numbers (LIBBPF_ERRNO__START .. __END in libbpf.h) sit above errno's.
LIBBPF_ERRNO_RANGE = range(4000, 4100)


def _is_error_number(number: int) -> bool:
    return number in errno.errorcode or number in LIBBPF_ERRNO_RANGE


def test_opening_a_non_elf_file_raises_with_a_positive_error_number(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "not-an-object.o"
    path.write_text("this is not ELF\n")
    with pytest.raises(libbpf.LibbpfError) as caught:
        libbpf.Object(str(path))
    assert caught.value.errno is not None and caught.value.errno > 0
    assert _is_error_number(caught.value.errno)
    assert str(path) in str(caught.value)


def test_libbpf_warnings_are_formatted_through_the_va_list_callback(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "garbage-object.o"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(libbpf.LibbpfError):
        libbpf.Object(str(path))
    messages = libbpf.recent_messages()
    # The path only appears if vsnprintf substituted libbpf's %s arguments.
    formatted = [message for message in messages if str(path) in message]
    assert formatted, messages
    assert not [message for message in messages if "%s" in message or "%d" in message]
    assert all(not message.endswith("\n") for message in messages)


def test_recent_messages_are_cleared_once_read(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.o"
    path.write_text("x")
    with pytest.raises(libbpf.LibbpfError):
        libbpf.Object(str(path))
    assert libbpf.recent_messages()
    assert libbpf.recent_messages() == []


def test_print_callback_survives_garbage_collection(tmp_path: pathlib.Path) -> None:
    gc.collect()
    path = tmp_path / "after-gc.o"
    path.write_text("x")
    for _ in range(3):
        with pytest.raises(libbpf.LibbpfError):
            libbpf.Object(str(path))
        gc.collect()
        assert [message for message in libbpf.recent_messages() if str(path) in message]


def test_opening_a_missing_path_reports_enoent(tmp_path: pathlib.Path) -> None:
    with pytest.raises(libbpf.LibbpfError) as caught:
        libbpf.Object(str(tmp_path / "absent.bpf.o"))
    assert caught.value.errno == errno.ENOENT


def test_parsing_btf_from_a_missing_path_reports_enoent(tmp_path: pathlib.Path) -> None:
    with pytest.raises(libbpf.LibbpfError) as caught:
        libbpf.Btf.parse(str(tmp_path / "absent"))
    assert caught.value.errno == errno.ENOENT


def test_libbpf_error_is_an_os_error() -> None:
    assert issubclass(libbpf.LibbpfError, OSError)


@pytest.mark.parametrize("function", [
    "bpf_object__open_file", "bpf_object__btf", "bpf_object__find_map_by_name",
    "bpf_object__find_program_by_name", "bpf_program__attach", "bpf_map__initial_value",
    "btf__load_vmlinux_btf", "btf__parse", "btf__type_by_id", "ring_buffer__new",
])
def test_pointer_returning_functions_return_full_width_pointers(function: str) -> None:
    assert getattr(libbpf.lib(), function).restype is ctypes.c_void_p


def _possible_cpus_from_sysfs() -> int:
    text = pathlib.Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def test_num_possible_cpus_counts_possible_not_online_cpus() -> None:
    assert libbpf.num_possible_cpus() == _possible_cpus_from_sysfs()


# -- an opened (not loaded) object ---------------------------------------------------------------


@pytest.fixture
def drops_object() -> Iterator[libbpf.Object]:
    obj = libbpf.Object(node.OBJECT_PATH)
    yield obj
    obj.close()


def test_missing_map_and_program_report_enoent(drops_object: libbpf.Object) -> None:
    for lookup in (drops_object.map, drops_object.program):
        with pytest.raises(libbpf.LibbpfError) as caught:
            lookup("no_such_thing")
        assert caught.value.errno == errno.ENOENT
        assert "no_such_thing" in str(caught.value)


def test_closed_object_refuses_use_and_closes_twice() -> None:
    obj = libbpf.Object(node.OBJECT_PATH)
    obj.close()
    obj.close()
    with pytest.raises(libbpf.LibbpfError) as caught:
        obj.map("events")
    assert caught.value.errno == errno.EBADF


def test_percpu_lookup_size_is_an_aligned_slot_per_possible_cpu(drops_object: libbpf.Object) -> None:
    counters = drops_object.map("counters")
    assert counters.is_percpu
    assert counters.value_size == node.COUNTERS.size == 40
    assert counters.lookup_size == (40 + 7) // 8 * 8 * libbpf.num_possible_cpus()


def test_percpu_slots_are_rounded_up_to_eight_bytes(drops_object: libbpf.Object,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libbpf.Map, "value_size", property(lambda _self: 12))
    assert drops_object.map("counters").lookup_size == 16 * libbpf.num_possible_cpus()


def test_plain_map_lookup_size_is_the_value_size(drops_object: libbpf.Object) -> None:
    netns_filter = drops_object.map("netns_filter")
    assert not netns_filter.is_percpu
    assert (netns_filter.key_size, netns_filter.lookup_size) == (4, 1)


def test_rodata_initial_value_is_a_writable_drops_config(drops_object: libbpf.Object) -> None:
    rodata = drops_object.map(".rodata").initial_value()
    assert len(rodata) == ctypes.sizeof(node.DropsConfig)
    config = node.DropsConfig.from_buffer(rodata)
    config.filter_ip, config.wakeup_bytes, config.rate_per_cpu = 1, 65536, 123
    again = node.DropsConfig.from_buffer(drops_object.map(".rodata").initial_value())
    assert (again.filter_ip, again.wakeup_bytes, again.rate_per_cpu) == (1, 65536, 123)


def test_struct_size_comes_from_the_objects_btf(drops_object: libbpf.Object) -> None:
    assert drops_object.struct_size("drop_event") == node.EVENT.size
    assert drops_object.struct_size("no_such_struct") == -1


# -- BTF -------------------------------------------------------------------------------------------


def test_struct_members_mask_bitfield_sizes_out_of_offsets() -> None:
    btf = libbpf.Btf.load_vmlinux()
    try:
        type_id = btf.find("tcphdr", libbpf.BTF_KIND_STRUCT)
        assert type_id > 0
        members = dict(btf.struct_members(type_id))
    finally:
        btf.free()
    # RFC 793 layout; tcphdr's flags are bitfields, so BTF sets kind_flag.
    assert (members["source"], members["dest"], members["seq"], members["ack_seq"]) == (0, 16, 32, 64)
    assert members["window"] == 112
    assert all(offset < 20 * 8 for offset in members.values())


def test_struct_members_refuse_an_enum() -> None:
    btf = libbpf.Btf.load_vmlinux()
    try:
        with pytest.raises(libbpf.LibbpfError) as caught:
            btf.struct_members(btf.find("skb_drop_reason", libbpf.BTF_KIND_ENUM))
        assert caught.value.errno == errno.EINVAL
    finally:
        btf.free()


def test_struct_members_refuse_a_type_id_past_the_end() -> None:
    btf = libbpf.Btf.parse(node.OBJECT_PATH)
    try:
        with pytest.raises(libbpf.LibbpfError):
            btf.struct_members(10**6)
    finally:
        btf.free()


def test_enum_values_refuse_a_struct() -> None:
    btf = libbpf.Btf.parse(node.OBJECT_PATH)
    try:
        with pytest.raises(libbpf.LibbpfError) as caught:
            btf.enum_values(btf.find("drop_event", libbpf.BTF_KIND_STRUCT))
        assert caught.value.errno == errno.EINVAL
    finally:
        btf.free()


def test_freed_btf_refuses_use() -> None:
    btf = libbpf.Btf.parse(node.OBJECT_PATH)
    btf.free()
    btf.free()
    with pytest.raises(libbpf.LibbpfError) as caught:
        btf.find("drop_event", libbpf.BTF_KIND_STRUCT)
    assert caught.value.errno == errno.EBADF


def test_find_reports_an_absent_type_as_minus_one() -> None:
    btf = libbpf.Btf.parse(node.OBJECT_PATH)
    try:
        assert btf.find("no_such_struct", libbpf.BTF_KIND_STRUCT) == -1
        assert btf.find("drop_event", libbpf.BTF_KIND_STRUCT) > 0
    finally:
        btf.free()


def test_libbpf_own_error_codes_have_text(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "not-an-object.o"
    path.write_text("this is not ELF\n")
    with pytest.raises(libbpf.LibbpfError) as caught:
        libbpf.Object(str(path))
    assert "Unknown error" not in str(caught.value)
