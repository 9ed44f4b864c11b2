"""The pieces that let the agent load everywhere: derived reasons from the
freeing function's kallsyms range, the lockdown mode, verifier rejections as
one line, and the table marking derived reasons."""

from __future__ import annotations

import os
import pathlib
import re

from kubectl_bpf.agent import ksyms, preflight, reasons, verifier
from kubectl_bpf.gadgets.drops import modes, node, output

KALLSYMS = """\
ffffffff81100000 T nf_hook_slow
ffffffff81100400 T nf_hook_slow_list
ffffffff81200000 t __udp4_lib_rcv
ffffffff81200900 t udp_v4_early_demux
ffffffff81300000 t tcp_v4_rcv.cold
ffffffff81300080 t other_cold
ffffffffc0100000 t nf_hook_slow\t[some_module]
"""

# The tail of a real 6.1 rejection, shape kept: the cause, then statistics.
VERIFIER_LOG = """\
reg type unsupported for arg#0 function handle_kfree_skb_btf#38
0: R1=ctx(off=0,imm=0) R10=fp0
; int BPF_PROG(handle_kfree_skb_btf, struct sk_buff *skb, void *location)
0: (79) r9 = *(u64 *)(r1 +8)
12: (85) call unknown#195896080
invalid func unknown#195896080
processed 12 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 1
"""


def test_function_ranges_end_at_the_next_symbol_and_skip_modules(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    ranges = ksyms.function_ranges(["nf_hook_slow", "__udp4_lib_rcv", "tcp_v4_rcv"], str(path))
    assert ranges == [("nf_hook_slow", 0xFFFFFFFF81100000, 0xFFFFFFFF81100400),
                      ("__udp4_lib_rcv", 0xFFFFFFFF81200000, 0xFFFFFFFF81200900),
                      ("tcp_v4_rcv", 0xFFFFFFFF81300000, 0xFFFFFFFF81300080)]


def test_hidden_kallsyms_addresses_give_no_ranges(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text(re.sub(r"^[0-9a-f]{16}", "0" * 16, KALLSYMS, flags=re.MULTILINE))
    assert ksyms.function_ranges(["nf_hook_slow"], str(path)) == []


def test_derived_locations_carry_the_derived_code(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    table = reasons.ReasonTable.from_locations()
    found = {table.name(code): (start, end) for start, end, code in node.derived_locations(table, str(path))}
    assert found["NETFILTER_DROP"] == (0xFFFFFFFF81100000, 0xFFFFFFFF81100400)
    assert found["NO_SOCKET"][0] in (0xFFFFFFFF81200000, 0xFFFFFFFF81300000)


def test_derived_table_names_only_what_can_be_derived() -> None:
    table = reasons.ReasonTable.from_locations()
    assert table.derived and table.name(0) == "UNKNOWN"
    assert table.names() == sorted(set(reasons.LOCATION_REASONS.values()))
    assert table.name(table.code("netfilter_drop")) == "NETFILTER_DROP"


def test_lockdown_mode_is_the_bracketed_word(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lockdown"
    path.write_text("none integrity [confidentiality]\n")
    assert preflight.lockdown_mode(str(path)) == "confidentiality"
    assert preflight.lockdown_mode(str(tmp_path / "absent")) == "unknown"


def test_lockdown_known_loads_only_the_direct_read_program() -> None:
    facts = preflight.HostFacts(kernel="6.12", btf=True, capabilities=(), lockdown="confidentiality",
                                tracefs=True)
    assert node.choose_variants(facts) == (node.LOCKED, node.LOCKED_BARE)
    unknown = preflight.HostFacts(kernel="6.12", btf=True, capabilities=(), lockdown="unknown",
                                  tracefs=False)
    assert node.choose_variants(unknown) == (*node.VARIANTS[:2], node.LOCKED, node.LOCKED_BARE)


def test_verifier_rejection_is_one_line_with_the_cause_and_the_log_in_a_file(
        tmp_path: pathlib.Path) -> None:
    line = verifier.rejection("6.1.0-50-cloud-amd64", "handle_kfree_skb_btf", VERIFIER_LOG,
                              directory=str(tmp_path))
    assert "\n" not in line
    assert line.startswith("kernel 6.1.0-50-cloud-amd64 rejected BPF program handle_kfree_skb_btf: "
                           "invalid func unknown#195896080 (full verifier log: ")
    path = line.rsplit(": ", 1)[1].rstrip(")")
    assert os.path.dirname(path) == str(tmp_path)
    assert pathlib.Path(path).read_text() == VERIFIER_LOG


def test_modes_say_what_is_degraded_in_one_line_each() -> None:
    assert modes.Mode(modes.REASONS_KERNEL, modes.READS_PROBE).degraded("6.18") == []
    assert modes.Mode(modes.REASONS_KERNEL, modes.READS_BTF).to_record("6.12")["degraded"] == []
    bare = modes.Mode(modes.REASONS_KERNEL, modes.READS_BARE).to_record("6.1")
    assert bare["headers"] is False and bare["degraded"] == [modes.LOCKDOWN_LINE]
    derived = modes.Mode(modes.REASONS_DERIVED, modes.READS_PROBE).degraded("5.10")
    assert len(derived) == 1 and "derived" in derived[0]


def test_table_marks_derived_reasons_and_the_summary_names_the_mode() -> None:
    assert output.reason_cell({"reason": "NO_SOCKET", "reason_source": "location"}) == "NO_SOCKET*"
    assert output.reason_cell({"reason": "NO_SOCKET", "reason_source": "kernel"}) == "NO_SOCKET"
    summary = {"drops": 3, "duration_s": 1.0, "events": 3, "suppressed": 0, "lost": 0,
               "reasons": {"NO_SOCKET": 2, "UNKNOWN": 1},
               "mode": modes.Mode(modes.REASONS_DERIVED, modes.READS_PROBE).to_record("5.10")}
    text = output.summary_text(summary)
    assert "Reasons: derived reasons (*)" in text
    assert "NO_SOCKET*" in text and "UNKNOWN*" not in text
