"""Target references -> pods with host facts, grouped by node; every refusal
is one line that names what is missing or why it cannot be traced."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubectl_bpf.kube import client, errors, targets
from kubectl_bpf.protocol import exitcodes, spec

from .conftest import (
    CONTAINER_ID,
    FakeCluster,
    api_error,
    container_status,
    model,
    node_json,
    pod_json,
    workload_json,
)

# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "name"), [
    ("web", targets.POD, "web"),
    ("pod/web", targets.POD, "web"),
    ("po/web", targets.POD, "web"),
    ("pods/web", targets.POD, "web"),
    ("deploy/api", targets.DEPLOYMENT, "api"),
    ("deployment/api", targets.DEPLOYMENT, "api"),
    ("deployment.apps/api", targets.DEPLOYMENT, "api"),
    ("sts/db", targets.STATEFULSET, "db"),
    ("statefulset/db", targets.STATEFULSET, "db"),
    ("ds/agent", targets.DAEMONSET, "agent"),
    ("daemonset/agent", targets.DAEMONSET, "agent"),
    ("node/n1.example.com", targets.NODE, "n1.example.com"),
    ("Deploy/api", targets.DEPLOYMENT, "api"),
])
def test_references_parse_with_kubectl_spellings(text: str, kind: str, name: str) -> None:
    assert targets.parse_target(text) == targets.TargetRef(kind, name)


@pytest.mark.parametrize(("text", "message"), [
    ("svc/web", "unsupported target kind 'svc'"),
    ("job/x", "unsupported target kind 'job'"),
    ("Shop/web", "unsupported target kind 'Shop'"),
    ("pod/", "invalid pod name ''"),
    ("Web", "invalid pod name 'Web'"),
    ("deploy/a_b", "invalid deployment name 'a_b'"),
])
def test_bad_references_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(targets.TargetSyntaxError, match=message) as caught:
        targets.parse_target(text)
    assert caught.value.exit_code == exitcodes.USAGE


def test_no_target_at_all_is_a_usage_error(kube: client.Kube) -> None:
    with pytest.raises(targets.TargetSyntaxError, match="no target"):
        targets.resolve(kube, [])


@pytest.mark.parametrize("prefix", ["containerd://", "cri-o://", "docker://", "cri-containerd://", ""])
def test_any_runtime_prefix_is_stripped(prefix: str) -> None:
    assert targets.strip_runtime_prefix(f"{prefix}{CONTAINER_ID}") == CONTAINER_ID


# -- selectors -------------------------------------------------------------------------------------


def selector(data: dict[str, Any]) -> Any:
    return model("V1LabelSelector", data)


def test_match_labels_become_equality_requirements_sorted() -> None:
    assert targets.selector_string(selector({"matchLabels": {"tier": "web", "app": "shop"}})) \
        == "app=shop,tier=web"


def test_match_expressions_cover_every_operator() -> None:
    text = targets.selector_string(selector({
        "matchLabels": {"app": "shop"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "managed", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ]}))
    assert text == "app=shop,env in (canary,prod),zone notin (b),managed,!legacy"


def test_empty_selector_is_empty_string() -> None:
    assert targets.selector_string(None) == ""
    assert targets.selector_string(selector({})) == ""


def test_workload_with_match_expressions_lists_exactly_its_pods(kube: client.Kube,
                                                                cluster: FakeCluster) -> None:
    cluster.add_workload(workload_json("Deployment", "api", match_labels={"app": "api"}, match_expressions=[
        {"key": "track", "operator": "NotIn", "values": ["canary"]}]))
    cluster.add_pod(pod_json("api-1", labels={"app": "api", "track": "stable"}))
    cluster.add_pod(pod_json("api-2", labels={"app": "api"}, node="n2", ips=("10.0.1.7",)))
    cluster.add_pod(pod_json("api-canary", labels={"app": "api", "track": "canary"}))
    cluster.add_pod(pod_json("other", labels={"app": "web"}))
    resolution = targets.resolve(kube, ["deploy/api"])
    assert [pod.name for pod in resolution.pods] == ["api-1", "api-2"]
    assert cluster.called("list_namespaced_pod") == [
        ("list_namespaced_pod", "shop", "app=api,track notin (canary)")]


@pytest.mark.parametrize(("reference", "kind"), [("sts/db", "StatefulSet"), ("ds/agent", "DaemonSet")])
def test_statefulsets_and_daemonsets_resolve_through_their_selector(
        kube: client.Kube, cluster: FakeCluster, reference: str, kind: str) -> None:
    name = reference.split("/")[1]
    cluster.add_workload(workload_json(kind, name, match_labels={"app": name}))
    cluster.add_pod(pod_json(f"{name}-0", labels={"app": name}))
    assert [pod.name for pod in targets.resolve(kube, [reference]).pods] == [f"{name}-0"]


# -- pods and groups -------------------------------------------------------------------------------


def test_pod_resolves_to_node_uid_ips_and_bare_container_ids(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", ips=("10.0.0.5", "fd00::5"), containers=[
        container_status("app", f"cri-o://{CONTAINER_ID}"),
        container_status("sidecar", "docker://" + "AB12" * 16)]))
    resolution = targets.resolve(kube, ["web"])
    assert resolution.warnings == ()
    (group,) = resolution.groups
    assert group == targets.NodeGroup(node="n1", pods=(targets.PodTarget(
        namespace="shop", name="web", uid="uid-shop-web", node="n1", ips=("10.0.0.5", "fd00::5"),
        container_ids=(CONTAINER_ID, "ab12" * 16), host_network=False, phase="Running"),), whole_node=False)
    assert targets.target_spec(group) == spec.TargetSpec(container_ids=(CONTAINER_ID, "ab12" * 16),
                                                         ips=("10.0.0.5", "fd00::5"))
    assert targets.describe(group) == ("shop/web",)


def test_only_running_containers_are_passed_to_the_agent(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", containers=[
        container_status("app", f"containerd://{CONTAINER_ID}"),
        container_status("crashing", "containerd://" + "ee" * 32, state="waiting", reason="CrashLoopBackOff"),
        container_status("done", "containerd://" + "dd" * 32, state="terminated", reason="Completed")]))
    assert targets.resolve(kube, ["web"]).pods[0].container_ids == (CONTAINER_ID,)


def test_pod_with_no_running_container_is_traced_by_ip_with_a_warning(kube: client.Kube,
                                                                      cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", containers=[
        container_status("app", "containerd://" + "ee" * 32, state="waiting", reason="CrashLoopBackOff")]))
    resolution = targets.resolve(kube, ["web"])
    assert targets.target_spec(resolution.groups[0]) == spec.TargetSpec(ips=("10.0.0.5",))
    assert any("has no running container: matching its IPs only" in w for w in resolution.warnings)


def test_several_pods_make_one_group_per_node(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("a", node="n2", ips=("10.0.1.1",), labels={"app": "x"}))
    cluster.add_pod(pod_json("b", node="n1", ips=("10.0.0.2",), labels={"app": "x"}))
    cluster.add_pod(pod_json("c", node="n2", ips=("10.0.1.3",), labels={"app": "x"}))
    resolution = targets.resolve(kube, ["a"], selector="app=x")
    assert [(g.node, [p.name for p in g.pods]) for g in resolution.groups] == [
        ("n1", ["b"]), ("n2", ["a", "c"])]
    n2 = resolution.groups[1]
    assert targets.target_spec(n2).ips == ("10.0.1.1", "10.0.1.3")
    assert targets.describe(n2) == ("shop/a", "shop/c")


def test_a_pod_named_twice_is_traced_once(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", labels={"app": "web"}))
    assert len(targets.resolve(kube, ["web", "pod/web"], selector="app=web").pods) == 1


def test_namespace_argument_overrides_the_connection_default(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.namespaces.add("other")
    cluster.add_pod(pod_json("web", namespace="other"))
    assert targets.resolve(kube, ["web"], namespace="other").pods[0].namespace == "other"


def test_ns_slash_pod_names_a_pod_in_its_own_namespace(kube: client.Kube, cluster: FakeCluster) -> None:
    """As policy-test's --from/--to take it; kinds still win (node/x is a node)."""
    cluster.namespaces.add("other")
    cluster.add_pod(pod_json("web", namespace="other"))
    cluster.add_pod(pod_json("api"))
    assert targets.parse_target("other/web") == targets.TargetRef(targets.POD, "web", namespace="other")
    assert targets.parse_target("node/web").kind == targets.NODE
    pods = targets.resolve(kube, ["other/web", "api"]).pods
    assert sorted(pod.ref for pod in pods) == ["other/web", "shop/api"]


def test_ns_slash_pod_in_a_missing_namespace_names_the_namespace(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError, match='namespace "nowhere" not found'):
        targets.resolve(kube, ["nowhere/web"])


def test_host_network_pod_is_allowed_with_a_warning(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("proxy", host_network=True, ips=("192.0.2.10",)))
    resolution = targets.resolve(kube, ["proxy"])
    assert resolution.pods[0].host_network
    assert resolution.warnings == (
        f'pod "proxy" in namespace "shop" uses hostNetwork: {targets.HOST_NETWORK_WARNING}',)
    assert "netns is the node's: drops of every host-network process are shown" in resolution.warnings[0]


# -- refusals --------------------------------------------------------------------------------------


def test_missing_pod_is_named_with_its_namespace(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError) as caught:
        targets.resolve(kube, ["web"])
    assert str(caught.value) == 'pod "web" not found in namespace "shop"'
    assert caught.value.exit_code == exitcodes.NOT_FOUND


def test_missing_namespace_is_told_apart_from_a_missing_pod(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError) as caught:
        targets.resolve(kube, ["web"], namespace="nope")
    assert str(caught.value) == 'namespace "nope" not found'


def test_forbidden_namespace_read_still_reports_the_pod(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["read_namespace"] = api_error(403, "forbidden")
    with pytest.raises(errors.NotFoundError, match=r'^pod "web" not found in namespace "shop"$'):
        targets.resolve(kube, ["web"])


@pytest.mark.parametrize(("reference", "message"), [
    ("deploy/api", 'deployment "api" not found in namespace "shop"'),
    ("sts/db", 'statefulset "db" not found in namespace "shop"'),
    ("ds/agent", 'daemonset "agent" not found in namespace "shop"'),
])
def test_missing_workload_is_named(kube: client.Kube, reference: str, message: str) -> None:
    with pytest.raises(errors.NotFoundError) as caught:
        targets.resolve(kube, [reference])
    assert str(caught.value) == message


def test_missing_workload_in_missing_namespace_names_the_namespace(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError, match=r'^namespace "gone" not found$'):
        targets.resolve(kube, ["deploy/api"], namespace="gone")


def test_workload_without_pods_says_so(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_workload(workload_json("Deployment", "api", match_labels={"app": "api"}))
    with pytest.raises(errors.NotFoundError) as caught:
        targets.resolve(kube, ["deploy/api"])
    assert str(caught.value) == 'deployment "api" in namespace "shop" has no pods (selector "app=api")'


def test_selector_matching_nothing_is_not_found(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError) as caught:
        targets.resolve(kube, [], selector="app=none")
    assert str(caught.value) == 'no pods match selector "app=none" in namespace "shop"'


def test_selector_in_missing_namespace_names_the_namespace(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError, match=r'^namespace "gone" not found$'):
        targets.resolve(kube, [], namespace="gone", selector="app=x")


def test_malformed_selector_is_a_usage_error(kube: client.Kube) -> None:
    with pytest.raises(targets.TargetSyntaxError, match="invalid label selector 'app in \\('"):
        targets.resolve(kube, [], selector="app in (")


def test_pending_pod_reports_its_waiting_reason(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", phase="Pending", ips=(), containers=[container_status(
        "app", None, state="waiting", reason="ImagePullBackOff", message='Back-off pulling image "x"')]))
    with pytest.raises(errors.TargetStateError) as caught:
        targets.resolve(kube, ["web"])
    assert str(caught.value) == ('pod "web" in namespace "shop" is Pending '
                                 '(ImagePullBackOff: Back-off pulling image "x")')
    assert caught.value.exit_code == exitcodes.TARGET_STATE


def test_unschedulable_pod_reports_the_scheduler_message(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", phase="Pending", node=None, ips=(), containers=[], conditions=[
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient cpu."}]))
    with pytest.raises(errors.TargetStateError) as caught:
        targets.resolve(kube, ["web"])
    assert str(caught.value) == ('pod "web" in namespace "shop" is Pending '
                                 '(Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.)')


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pod_cannot_be_traced(kube: client.Kube, cluster: FakeCluster, phase: str) -> None:
    cluster.add_pod(pod_json("job-x", phase=phase))
    with pytest.raises(errors.TargetStateError,
                       match=re.escape(f'pod "job-x" in namespace "shop" has finished ({phase})')):
        targets.resolve(kube, ["job-x"])


def test_running_pod_without_ip_cannot_be_traced(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", ips=()))
    with pytest.raises(errors.TargetStateError,
                       match=r'^pod "web" in namespace "shop" has no IP address yet$'):
        targets.resolve(kube, ["web"])


def test_running_pod_without_node_cannot_be_traced(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("web", node=None))
    with pytest.raises(errors.TargetStateError, match="is not scheduled on a node"):
        targets.resolve(kube, ["web"])


def test_pod_on_windows_node_is_refused(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_node(node_json("win1", os_label="windows"))
    cluster.add_pod(pod_json("iis", node="win1"))
    with pytest.raises(errors.TargetStateError) as caught:
        targets.resolve(kube, ["iis"])
    assert str(caught.value) == ('pod "iis" in namespace "shop" runs on Windows node "win1": '
                                 "eBPF tracing needs a Linux node")


def test_windows_pod_spec_is_refused_without_reading_the_node(kube: client.Kube,
                                                             cluster: FakeCluster) -> None:
    cluster.failures["read_node"] = api_error(403, "nodes is forbidden")
    cluster.add_pod(pod_json("iis", os_name="windows"))
    with pytest.raises(errors.TargetStateError, match="runs on Windows node"):
        targets.resolve(kube, ["iis"])


def test_windows_check_is_skipped_when_nodes_are_forbidden(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["read_node"] = api_error(403, "nodes is forbidden")
    cluster.add_pod(pod_json("web"))
    assert targets.resolve(kube, ["web"]).pods[0].name == "web"


def test_each_node_is_read_once(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_node(node_json("n1"))
    for name in ("a", "b", "c"):
        cluster.add_pod(pod_json(name, labels={"app": "x"}))
    targets.resolve(kube, [], selector="app=x")
    assert len(cluster.called("read_node")) == 1


def test_untraceable_members_of_a_set_are_skipped_with_a_warning(kube: client.Kube,
                                                                 cluster: FakeCluster) -> None:
    cluster.add_pod(pod_json("a", labels={"app": "x"}))
    cluster.add_pod(pod_json("b", labels={"app": "x"}, phase="Pending", ips=()))
    resolution = targets.resolve(kube, [], selector="app=x")
    assert [pod.name for pod in resolution.pods] == ["a"]
    assert resolution.warnings == ('skipping pod "b" in namespace "shop": it is Pending',)


def test_a_set_with_no_traceable_pod_is_refused(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_workload(workload_json("Deployment", "api", match_labels={"app": "api"}))
    cluster.add_pod(pod_json("api-1", labels={"app": "api"}, phase="Pending", ips=()))
    cluster.add_pod(pod_json("api-2", labels={"app": "api"}, phase="Pending", ips=()))
    with pytest.raises(errors.TargetStateError) as caught:
        targets.resolve(kube, ["deploy/api"])
    assert str(caught.value) == ('no pod of deployment "api" (selector "app=api") can be traced: '
                                 'pod "api-1" in namespace "shop" is Pending (and 1 more)')


# -- nodes -----------------------------------------------------------------------------------------


def test_node_target_traces_the_whole_node(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_node(node_json("n1"))
    (group,) = targets.resolve(kube, ["node/n1"]).groups
    assert group == targets.NodeGroup(node="n1", pods=(), whole_node=True)
    assert targets.target_spec(group) == spec.TargetSpec()
    assert targets.target_spec(group).is_whole_host
    assert targets.describe(group) == ("node/n1",)


def test_node_and_pod_on_it_merge_into_a_whole_node_group(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_node(node_json("n1"))
    cluster.add_pod(pod_json("web"))
    (group,) = targets.resolve(kube, ["web", "node/n1"]).groups
    assert group.whole_node
    assert targets.target_spec(group) == spec.TargetSpec()
    assert targets.describe(group) == ("node/n1", "shop/web")


def test_missing_node_is_not_found(kube: client.Kube) -> None:
    with pytest.raises(errors.NotFoundError, match=r'^node "n9" not found$'):
        targets.resolve(kube, ["node/n9"])


def test_not_ready_node_is_traced_with_a_warning(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_node(node_json("n1", ready=False))
    resolution = targets.resolve(kube, ["node/n1"])
    assert resolution.groups[0].whole_node
    assert resolution.warnings == ('node "n1" is not Ready: the tracer pod may not start',)


def test_windows_node_target_is_refused(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.add_node(node_json("win1", os_label="windows"))
    with pytest.raises(errors.TargetStateError, match=r'^node "win1" runs Windows'):
        targets.resolve(kube, ["node/win1"])


# -- peers -----------------------------------------------------------------------------------------


def test_peer_names_map_every_pod_ip_across_pages(kube: client.Kube, cluster: FakeCluster,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "PEER_PAGE_SIZE", 2)
    cluster.namespaces.add("db")
    cluster.add_pod(pod_json("web", ips=("10.0.0.5", "fd00::5")))
    cluster.add_pod(pod_json("api", ips=("10.0.0.6",)))
    cluster.add_pod(pod_json("pg", namespace="db", ips=("10.0.0.7",)))
    cluster.add_pod(pod_json("node-exporter", host_network=True, ips=("192.0.2.1",)))
    cluster.add_pod(pod_json("old", phase="Succeeded", ips=("10.0.0.9",)))
    assert targets.peer_names(kube) == {"10.0.0.5": "shop/web", "fd00::5": "shop/web",
                                        "10.0.0.6": "shop/api", "10.0.0.7": "db/pg"}
    assert len(cluster.called("list_pod_for_all_namespaces")) == 3


def test_peer_names_are_empty_when_listing_all_pods_is_forbidden(kube: client.Kube,
                                                                 cluster: FakeCluster) -> None:
    cluster.failures["list_pod_for_all_namespaces"] = api_error(403, "pods is forbidden")
    assert targets.peer_names(kube) == {}


def test_peer_names_report_other_failures(kube: client.Kube, cluster: FakeCluster) -> None:
    cluster.failures["list_pod_for_all_namespaces"] = api_error(500, "etcd timeout")
    with pytest.raises(errors.KubeError, match="listing pods in all namespaces: etcd timeout"):
        targets.peer_names(kube)


def test_node_addresses_and_pod_network_gateways_name_their_node(kube: client.Kube,
                                                                 cluster: FakeCluster) -> None:
    for index, name in enumerate(("kind-worker", "kind-worker2")):
        node = node_json(name)
        node["spec"] = {"podCIDR": f"10.88.{index}.0/24",
                        "podCIDRs": [f"10.88.{index}.0/24", f"fd88:{index}::/64"]}
        node["status"]["addresses"] = [{"type": "InternalIP", "address": f"172.18.0.{index + 2}"},
                                       {"type": "Hostname", "address": name}]
        cluster.add_node(node)
    cluster.add_pod(pod_json("web", ips=("10.88.1.1",)))  # a CNI that gave the gateway's address to a pod
    assert targets.node_names(kube) == {
        "172.18.0.2": "node/kind-worker", "10.88.0.1": "node/kind-worker", "fd88::1": "node/kind-worker",
        "172.18.0.3": "node/kind-worker2", "10.88.1.1": "node/kind-worker2", "fd88:1::1": "node/kind-worker2"}
    names = targets.address_names(kube)
    assert names["10.88.0.1"] == "node/kind-worker" and names["172.18.0.3"] == "node/kind-worker2"
    assert names["10.88.1.1"] == "shop/web"  # the pod's own name wins


def test_node_names_are_empty_when_listing_nodes_is_forbidden(kube: client.Kube,
                                                              cluster: FakeCluster) -> None:
    cluster.failures["list_node"] = api_error(403, "nodes is forbidden")
    assert targets.node_names(kube) == {}
    cluster.failures["list_node"] = api_error(500, "etcd timeout")
    with pytest.raises(errors.KubeError, match="listing nodes: etcd timeout"):
        targets.node_names(kube)
