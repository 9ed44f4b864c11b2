"""Kernel text addresses to ``func+0xoff`` from a (fake) /proc/kallsyms."""

from __future__ import annotations

import pathlib

import pytest

from kubectl_bpf.agent import ksyms

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81200000 t __udp4_lib_rcv
ffffffff81100000 T ip_rcv
ffffffff81300000 D some_data
ffffffff81300100 b some_bss
ffffffff81400000 W weak_function
ffffffff81500000 r some_rodata
ffffffffc0100000 t nft_do_chain\t[nf_tables]
ffffffffc0100800 T nft_other\t[nf_tables]
"""


def _symbols(tmp_path: pathlib.Path, text: str = KALLSYMS) -> ksyms.Symbols:
    path = tmp_path / "kallsyms"
    path.write_text(text)
    symbols = ksyms.Symbols(str(path))
    symbols.load_in_background()
    return symbols


def test_address_inside_a_function_is_name_plus_hex_offset(tmp_path: pathlib.Path) -> None:
    symbols = _symbols(tmp_path)
    assert symbols.symbolize(0xFFFFFFFF812001A4) == "__udp4_lib_rcv+0x1a4"


def test_address_at_a_function_start_has_offset_zero(tmp_path: pathlib.Path) -> None:
    assert _symbols(tmp_path).symbolize(0xFFFFFFFF81100000) == "ip_rcv+0x0"


def test_unsorted_kallsyms_is_sorted_before_lookup(tmp_path: pathlib.Path) -> None:
    # ip_rcv is listed after __udp4_lib_rcv but lies below it.
    assert _symbols(tmp_path).symbolize(0xFFFFFFFF81100010) == "ip_rcv+0x10"


def test_data_symbols_are_not_used_for_code(tmp_path: pathlib.Path) -> None:
    symbols = _symbols(tmp_path)
    assert symbols.symbolize(0xFFFFFFFF81300110) == "__udp4_lib_rcv+0x100110"
    assert symbols.symbolize(0xFFFFFFFF81500004) == "weak_function+0x100004"


def test_module_symbols_drop_the_module_suffix(tmp_path: pathlib.Path) -> None:
    symbols = _symbols(tmp_path)
    assert symbols.symbolize(0xFFFFFFFFC01003E8) == "nft_do_chain+0x3e8"
    assert symbols.symbolize(0xFFFFFFFFC0100800) == "nft_other+0x0"


def test_address_below_every_symbol_stays_hex(tmp_path: pathlib.Path) -> None:
    assert _symbols(tmp_path).symbolize(0xFFFFFFFF80000000) == "0xffffffff80000000"


def test_zero_address_stays_hex(tmp_path: pathlib.Path) -> None:
    assert _symbols(tmp_path).symbolize(0) == "0x0"


def test_restricted_kallsyms_with_zero_addresses_gives_hex_not_wrong_names(tmp_path: pathlib.Path) -> None:
    restricted = "0000000000000000 T _stext\n0000000000000000 t __udp4_lib_rcv\n"
    assert _symbols(tmp_path, restricted).symbolize(0xFFFFFFFF812001A4) == "0xffffffff812001a4"


def test_missing_kallsyms_gives_hex(tmp_path: pathlib.Path) -> None:
    symbols = ksyms.Symbols(str(tmp_path / "absent"))
    symbols.load_in_background()
    assert symbols.symbolize(0xFFFFFFFF812001A4) == "0xffffffff812001a4"


def test_malformed_lines_are_skipped(tmp_path: pathlib.Path) -> None:
    text = "garbage\n\nffffffff81000000\nffffffff81000000 T\n" + KALLSYMS
    assert _symbols(tmp_path, text).symbolize(0xFFFFFFFF812001A4) == "__udp4_lib_rcv+0x1a4"


def test_first_lookup_without_background_load_reads_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    assert ksyms.Symbols(str(path)).symbolize(0xFFFFFFFF812001A4) == "__udp4_lib_rcv+0x1a4"


def test_repeated_lookups_give_the_same_answer(tmp_path: pathlib.Path) -> None:
    symbols = _symbols(tmp_path)
    first = symbols.symbolize(0xFFFFFFFFC01003E8)
    (tmp_path / "kallsyms").write_text("")  # a reload would lose every name
    assert symbols.symbolize(0xFFFFFFFFC01003E8) == first == "nft_do_chain+0x3e8"


@pytest.mark.parametrize("kind", ["T", "t", "W", "w"])
def test_every_text_symbol_type_counts(tmp_path: pathlib.Path, kind: str) -> None:
    text = f"ffffffff81000000 T _stext\nffffffff81000100 {kind} target\n"
    assert _symbols(tmp_path, text).symbolize(0xFFFFFFFF81000108) == "target+0x8"


def test_second_lookup_without_background_load_symbolizes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text("ffffffff81100000 T ip_rcv\nffffffff81200000 t __udp4_lib_rcv\n")
    symbols = ksyms.Symbols(str(path))
    assert symbols.symbolize(0xFFFFFFFF81100010) == "ip_rcv+0x10"
    assert symbols.symbolize(0xFFFFFFFF812001A4) == "__udp4_lib_rcv+0x1a4"
