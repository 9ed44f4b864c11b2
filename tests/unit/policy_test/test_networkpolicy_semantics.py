"""NetworkPolicy v1 semantics, one claim per test, each checked as truth tables from ``cases/``.

Every cell is computed by the command's path (the indexed matrix) and compared with the
reference evaluator as well; see conftest.py for the case format.
"""

from __future__ import annotations

from collections.abc import Callable

from kubectl_bpf.gadgets.policy_test import inventory

CheckCase = Callable[[str], inventory.Inventory]  # the check_case fixture of conftest.py


def test_policy_with_only_an_egress_section_isolates_egress_too(check_case: CheckCase) -> None:
    check_case("policy_types")


def test_empty_and_absent_rules_ports_and_peers_mean_what_the_api_says(check_case: CheckCase) -> None:
    check_case("empty_and_absent")


def test_selectors_in_one_peer_are_anded_and_peers_are_ored(check_case: CheckCase) -> None:
    check_case("peers_and_or")


def test_every_match_expressions_operator_and_notin_matches_unlabelled_pods(check_case: CheckCase) -> None:
    check_case("match_expressions")


def test_namespaces_match_by_metadata_name_label_even_when_the_export_lacks_it(
        check_case: CheckCase) -> None:
    inv = check_case("namespace_name_label")
    assert inv.namespaces["x"].labels == {"kubernetes.io/metadata.name": "x"}
    assert any("no Namespace object for z" in warning for warning in inv.warnings)


def test_named_port_resolves_per_destination_pod(check_case: CheckCase) -> None:
    check_case("named_ports")


def test_named_port_resolves_by_name_and_protocol(check_case: CheckCase) -> None:
    check_case("named_port_protocol")


def test_end_port_makes_an_inclusive_range(check_case: CheckCase) -> None:
    check_case("end_port")


def test_protocols_are_separate_and_default_to_tcp(check_case: CheckCase) -> None:
    check_case("protocols")


def test_ip_block_except_is_matched_against_pod_ips_and_flagged_cni_dependent(
        check_case: CheckCase) -> None:
    check_case("ip_block")


def test_host_network_traffic_is_undefined_and_a_pod_always_reaches_itself(check_case: CheckCase) -> None:
    check_case("undefined")


def test_egress_deny_on_the_source_wins_even_when_the_destination_allows(check_case: CheckCase) -> None:
    check_case("egress_deny_wins")


def test_allowed_traffic_is_the_union_of_all_selecting_policies(check_case: CheckCase) -> None:
    check_case("union_of_policies")


def test_upstream_default_deny_truth_tables_hold(check_case: CheckCase) -> None:
    check_case("upstream_default_deny")
