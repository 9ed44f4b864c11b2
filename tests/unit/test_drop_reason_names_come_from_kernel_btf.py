"""Drop reason names: decoded from an enum read from BTF, never from a table.

The synthetic tables stand for kernels that numbered reasons differently;
the last tests read the running kernel's own ``enum skb_drop_reason``.
"""

from __future__ import annotations

import os

import pytest

from kubectl_bpf.agent import libbpf, reasons
from kubectl_bpf.gadgets.drops import node

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

CORE = {"SKB_NOT_DROPPED_YET": 0, "SKB_CONSUMED": 1, "SKB_DROP_REASON_NOT_SPECIFIED": 2,
        "SKB_DROP_REASON_NO_SOCKET": 3, "SKB_DROP_REASON_TC_INGRESS": 61,
        "SKB_DROP_REASON_MAX": 62, "SKB_DROP_REASON_SUBSYS_MASK": 0xFFFF0000}
SUBSYSTEMS = {"SKB_DROP_REASON_SUBSYS_CORE": 0, "SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE": 1,
              "SKB_DROP_REASON_SUBSYS_OPENVSWITCH": 2, "SKB_DROP_REASON_SUBSYS_NUM": 3}
# Enumerators that are not drops, with and without their prefixes.
HIDDEN = ("SKB_CONSUMED", "CONSUMED", "NOT_DROPPED_YET", "SKB_NOT_DROPPED_YET", "SUBSYS_MASK", "MAX",
          "SKB_DROP_REASON_SUBSYS_MASK", "SKB_DROP_REASON_MAX")


@pytest.fixture
def table() -> reasons.ReasonTable:
    return reasons.ReasonTable(CORE, SUBSYSTEMS)


def test_names_lose_the_skb_drop_reason_prefix(table: reasons.ReasonTable) -> None:
    assert table.name(3) == "NO_SOCKET"
    assert table.name(61) == "TC_INGRESS"


def test_the_same_name_follows_the_kernels_numbering() -> None:
    renumbered = reasons.ReasonTable({"SKB_DROP_REASON_NO_SOCKET": 5, "SKB_DROP_REASON_TC_INGRESS": 3}, {})
    assert renumbered.name(5) == "NO_SOCKET"
    assert renumbered.name(3) == "TC_INGRESS"
    assert renumbered.code("NO_SOCKET") == 5


def test_non_drops_and_markers_are_never_named(table: reasons.ReasonTable) -> None:
    assert table.names() == ["NOT_SPECIFIED", "NO_SOCKET", "TC_INGRESS"]
    assert table.name(0) == "UNKNOWN_0"
    assert table.name(1) == "UNKNOWN_1"
    for hidden in HIDDEN:
        with pytest.raises(KeyError):
            table.code(hidden)


def test_unknown_core_code_is_shown_with_its_number(table: reasons.ReasonTable) -> None:
    assert table.name(999) == "UNKNOWN_999"


def test_subsystem_codes_name_their_subsystem(table: reasons.ReasonTable) -> None:
    assert table.name(2 << 16 | 5) == "OPENVSWITCH:5"
    assert table.name(1 << 16 | 0) == "MAC80211_UNUSABLE:0"


def test_unknown_subsystem_is_shown_with_its_number(table: reasons.ReasonTable) -> None:
    assert table.name(9 << 16 | 7) == "SUBSYS_9:7"


def test_code_lookup_accepts_any_case_with_or_without_prefix(table: reasons.ReasonTable) -> None:
    assert table.code("NO_SOCKET") == 3
    assert table.code("no_socket") == 3
    assert table.code("SKB_DROP_REASON_NO_SOCKET") == 3
    assert table.code("skb_drop_reason_tc_ingress") == 61


def test_code_lookup_of_an_unknown_name_raises_key_error(table: reasons.ReasonTable) -> None:
    with pytest.raises(KeyError):
        table.code("NO_SUCH_REASON")


def _require_kernel_btf() -> None:
    if not os.path.exists(VMLINUX_BTF):
        pytest.fail(f"{VMLINUX_BTF} is missing: this machine kind always has kernel BTF, and the "
                    "unit tier reads drop reasons from it (it is world-readable; no root needed)",
                    pytrace=False)


def _kernel_enum() -> dict[str, int]:
    btf = libbpf.Btf.load_vmlinux()
    try:
        type_id = btf.find("skb_drop_reason", libbpf.BTF_KIND_ENUM)
        assert type_id > 0, "the running kernel's BTF has no enum skb_drop_reason"
        return btf.enum_values(type_id)
    finally:
        btf.free()


def test_kernel_btf_has_the_skb_drop_reason_enum() -> None:
    _require_kernel_btf()
    values = _kernel_enum()
    assert values["SKB_NOT_DROPPED_YET"] == 0
    assert values["SKB_CONSUMED"] == 1
    assert 1 < values["SKB_DROP_REASON_NO_SOCKET"] < 1 << 16


def test_kernel_reason_table_maps_no_socket_to_the_kernels_value() -> None:
    _require_kernel_btf()
    table = node.load_reason_table()
    kernel_value = _kernel_enum()["SKB_DROP_REASON_NO_SOCKET"]
    assert table.code("NO_SOCKET") == kernel_value
    assert table.name(kernel_value) == "NO_SOCKET"


def test_kernel_reason_table_never_names_non_drops() -> None:
    _require_kernel_btf()
    names = node.load_reason_table().names()
    assert "NO_SOCKET" in names and "NOT_SPECIFIED" in names
    for hidden in HIDDEN:
        assert hidden not in names
    assert not [name for name in names if name.startswith(reasons.CORE_PREFIX)]


def test_kernel_reason_table_names_every_real_reason_both_ways() -> None:
    _require_kernel_btf()
    table = node.load_reason_table()
    for name in table.names():
        assert table.name(table.code(name)) == name
