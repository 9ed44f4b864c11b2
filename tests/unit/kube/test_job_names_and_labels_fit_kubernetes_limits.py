"""Names and label values kubectl-bpf makes are always valid Kubernetes
syntax, however long or odd the node, user or target names are."""

from __future__ import annotations

import json
import re

import pytest

from kubectl_bpf.kube import labels
from kubectl_bpf.protocol import spec

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_lease_annotation_is_the_key_the_agent_reads() -> None:
    assert spec.RunSpec(gadget="drops").lease_key == labels.LEASE_ANNOTATION


def test_run_ids_are_short_lowercase_and_dns_safe() -> None:
    ids = {labels.new_run_id() for _ in range(500)}
    assert len(ids) == 500
    for run_id in ids:
        assert len(run_id) == labels.RUN_ID_CHARS
        assert DNS_LABEL.match(run_id) and run_id[0].isalpha()


@pytest.mark.parametrize("node", ["n1", "ip-10-0-0-1.eu-west-1.compute.internal", "x" * 253, "UPPER_case"])
@pytest.mark.parametrize("gadget", ["drops", "policy_test", "g" * 80])
def test_job_names_are_dns_labels_of_at_most_63(node: str, gadget: str) -> None:
    name = labels.job_name(gadget, "k3x9q2mz", node)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name
    assert name.startswith("kubectl-bpf-")
    assert "-k3x9q2mz-" in name


def test_job_name_has_the_documented_shape() -> None:
    assert re.fullmatch(r"kubectl-bpf-drops-k3x9q2mz-[0-9a-f]{8}", labels.job_name("drops", "k3x9q2mz", "n1"))
    assert labels.job_name("policy_test", "k3x9q2mz", "n1").startswith("kubectl-bpf-policy-test-")


def test_nodes_of_one_session_get_distinct_job_names() -> None:
    names = {labels.job_name("drops", "k3x9q2mz", f"node-{i}") for i in range(200)}
    assert len(names) == 200


@pytest.mark.parametrize("text", [
    "shop.web", "alice@example.com", "system:serviceaccount:ci:deployer", "-leading", "trailing.",
    "x" * 200, "ns-" + "a" * 70, "a b c", "日本語", "", "---",
])
def test_label_values_are_always_valid(text: str) -> None:
    value = labels.label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value


def test_short_valid_text_is_kept_as_is() -> None:
    assert labels.label_value("shop.web-1_a") == "shop.web-1_a"
    assert labels.label_value("alice@example.com") == "alice-example.com"


def test_truncated_values_keep_a_prefix_and_stay_distinct() -> None:
    first = labels.label_value("shop." + "a" * 100 + "1")
    second = labels.label_value("shop." + "a" * 100 + "2")
    assert first != second
    assert first.startswith("shop.aaaa")
    assert len(first) == 63


def test_target_label_names_one_pod_or_counts_the_rest() -> None:
    assert labels.target_value(["shop/web"]) == "shop.web"
    assert labels.target_value(["node/n1"]) == "node.n1"
    assert labels.target_value(["shop/web", "shop/api", "db/pg"]) == "shop.web.and-2-more"
    assert labels.target_value([]) == ""
    long_value = labels.target_value(["shop/" + "w" * 80, "shop/api"])
    assert long_value.endswith(".and-1-more") and len(long_value) <= 63
    assert LABEL_VALUE.match(long_value)


def test_job_labels_carry_the_selection_keys() -> None:
    result = labels.job_labels(gadget="drops", run_id="k3x9q2mz", node="n1", targets=["shop/web"],
                               user="alice@example.com", host="laptop")
    assert result == {
        "app.kubernetes.io/managed-by": "kubectl-bpf", "kubectl-bpf/run-id": "k3x9q2mz",
        "kubectl-bpf/gadget": "drops", "kubectl-bpf/node": "n1", "kubectl-bpf/target": "shop.web",
        "kubectl-bpf/user": "alice-example.com", "kubectl-bpf/host": "laptop"}


def test_annotations_keep_the_full_facts() -> None:
    result = labels.job_annotations(targets=["shop/web", "shop/api"], user="alice@example.com", host="h",
                                    command="kubectl-bpf drops web", created_at="2026-01-01T00:00:00Z")
    assert json.loads(result[labels.TARGETS_ANNOTATION]) == ["shop/web", "shop/api"]
    assert labels.parse_targets(result[labels.TARGETS_ANNOTATION]) == ("shop/web", "shop/api")
    assert result[labels.USER_ANNOTATION] == "alice@example.com"
    assert result[labels.COMMAND_ANNOTATION] == "kubectl-bpf drops web"


@pytest.mark.parametrize("text", [None, "", "not json", '{"a": 1}'])
def test_malformed_targets_annotation_reads_as_none(text: str) -> None:
    assert labels.parse_targets(text) == ()


def test_selectors_pick_all_sessions_or_one() -> None:
    assert labels.managed_selector() == "app.kubernetes.io/managed-by=kubectl-bpf"
    assert labels.run_selector("k3x9q2mz") == \
        "app.kubernetes.io/managed-by=kubectl-bpf,kubectl-bpf/run-id=k3x9q2mz"


def test_timestamps_are_kubernetes_style_utc() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels.now_iso())
