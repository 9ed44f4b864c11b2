"""The host side of make test-kernels: what a guest wrote back becomes pass/fail, never a skip."""

from __future__ import annotations

import json

import pytest

from tests.kernels import boot, fetch, guest, matrix, plugin, results

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.agent.test_probe_x" name="test_a" file="tests/agent/test_probe_x.py">
 <properties><property name="gadgets" value="probe"/></properties></testcase>
<testcase classname="tests.agent.test_y" name="test_b"><properties><property name="gadgets" value="drops"/>
 </properties><failure message="verifier">boom</failure></testcase>
<testcase classname="tests.agent.test_y" name="test_c"><properties><property name="gadgets" value="drops"/>
 </properties></testcase>
<testcase classname="tests.agent.test_z" name="test_d"><skipped message="no"/></testcase>
</testsuite></testsuites>"""

PREFLIGHT = json.dumps({"type": "preflight", "hook": "tp_btf/kfree_skb", "lockdown": "none"})


def results_file(*parts: tuple[str, str]) -> str:
    return "\n".join(f"{guest.MARK} {name}\n{body}" for name, body in parts) + "\n"


def test_a_finished_run_counts_each_gadget_and_names_failures():
    text = results_file(("PREFLIGHT", PREFLIGHT), ("LOCKDOWN", "[none] integrity confidentiality"),
                        ("JUNIT", JUNIT), ("RC", "1"), ("END", ""))
    r = results.parse(results.KernelResult("6.1"), "[    1.0] kernel noise\n" + text)
    assert r.finished and r.pytest_rc == 1
    assert r.preflight["hook"] == "tp_btf/kfree_skb"
    assert r.lockdown == "none"
    assert {g: (c.passed, c.failed, c.skipped) for g, c in r.gadgets.items()} == {
        "probe": (1, 0, 0), "drops": (1, 1, 0), "agent": (0, 0, 1)}
    assert r.failures == ["tests.agent.test_y::test_b", "tests.agent.test_z::test_d (skipped)"]
    assert not r.ok


def test_a_skip_alone_fails_the_kernel():
    junit = JUNIT.replace('<failure message="verifier">boom</failure>', "")
    r = results.parse(results.KernelResult("6.1"), results_file(("JUNIT", junit), ("RC", "0"), ("END", "")))
    assert r.gadgets["agent"].skipped == 1
    assert not r.ok


def test_all_passed_is_ok():
    junit = JUNIT.replace('<failure message="verifier">boom</failure>', "")
    junit = junit.replace('<skipped message="no"/>', "")
    r = results.parse(results.KernelResult("6.12"), results_file(("JUNIT", junit), ("RC", "0"), ("END", "")))
    assert r.ok


def test_a_guest_that_never_finished_fails_and_says_so():
    r = results.parse(results.KernelResult("5.10"), results_file(("PREFLIGHT", PREFLIGHT)))
    assert not r.finished and not r.ok
    assert "did not finish" in results.table([r])


def test_an_empty_results_file_is_a_failed_boot():
    r = results.parse(results.KernelResult("5.10"), "")
    assert not r.ok and "FAIL" in results.table([r])


def test_the_agents_refusal_is_kept_as_its_one_line():
    text = results_file(("PREFLIGHT", "kubectl-bpf: error: BPF may not read kernel memory"), ("END", ""))
    r = results.parse(results.KernelResult("6.12+lockdown"), text)
    assert r.preflight_error == "kubectl-bpf: error: BPF may not read kernel memory"
    assert r.error == "no JUnit XML came back" and not r.ok


def test_results_round_trip_through_json():
    text = results_file(("PREFLIGHT", PREFLIGHT), ("JUNIT", JUNIT), ("RC", "1"), ("END", ""))
    r = results.parse(results.KernelResult("6.1", "6.1.0-57-cloud-amd64"), text)
    again = results.KernelResult.from_json(json.loads(json.dumps(r.to_json())))
    assert again == r


def test_table_has_a_column_per_gadget_seen():
    text = results_file(("JUNIT", JUNIT), ("RC", "1"), ("END", ""))
    r = results.parse(results.KernelResult("6.1"), text)
    header = results.table([r]).splitlines()[0].split()
    assert header == ["kernel", "release", "hook", "lockdown", "agent", "drops", "probe", "result"]
    assert "1/1" in results.table([r]).splitlines()[2]


@pytest.mark.parametrize(("argv", "gadget"), [
    (["/usr/bin/python3", "-m", "kubectl_bpf", "drops", "--local"], "drops"),
    (["python3", "-m", "kubectl_bpf.agent", "--spec", '{"gadget": "probe", "count": 1}'], "probe"),
    (["ip", "netns", "exec", "x", "python3", "-m", "kubectl_bpf", "tcp"], "tcp"),
    (["ip", "link", "add"], None),
])
def test_the_gadget_a_test_ran_comes_from_its_command_line(argv, gadget):
    assert plugin.gadget_of(argv) == gadget


def test_pytest_arguments_reach_the_guest_through_a_file(tmp_path):
    args = ["tests/agent/test_x.py", "-k", "drop and not flood"]
    (tmp_path / "args.json").write_text(json.dumps(args))
    assert guest.pytest_args(str(tmp_path / "args.json")) == args


def test_the_command_line_carries_the_matrix_words_and_fits_the_kernels_limit():
    line = boot.kernel_cmdline(matrix.MATRIX[3])
    assert "lockdown=confidentiality" in line.split() and "rdinit=/init" in line.split()
    assert len(line) <= boot.MAX_CMDLINE
    with pytest.raises(ValueError, match="longer than"):
        boot.kernel_cmdline(matrix.Kernel("x", "trixie", "a" * 3000))


def test_matrix_selection_refuses_unknown_names():
    assert [k.name for k in matrix.select("6.1,6.12+lockdown")] == ["6.1", "6.12+lockdown"]
    assert matrix.select("all") == matrix.MATRIX
    with pytest.raises(ValueError, match="unknown kernel"):
        matrix.select("4.19")


def test_apt_never_reads_the_hosts_sources():
    opts = fetch.apt_options("/c/apt/bookworm")
    values = opts[1::2]
    assert "Dir::Etc::sourceparts=-" in values
    assert all(v.split("=", 1)[1].startswith("/c/apt/bookworm") for v in values
               if v.startswith("Dir::") and v != "Dir::Etc::sourceparts=-")
    assert "bullseye-security main" in fetch.sources_list("bullseye")


def test_the_versioned_image_is_read_from_apt_cache_output():
    out = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n"
    assert fetch.image_dependency(out) == "linux-image-6.1.0-57-cloud-amd64"
    assert fetch.candidate_version("  Installed: (none)\n  Candidate: 6.1.192-3\n") == "6.1.192-3"
    with pytest.raises(RuntimeError):
        fetch.candidate_version("  Candidate: (none)\n")
