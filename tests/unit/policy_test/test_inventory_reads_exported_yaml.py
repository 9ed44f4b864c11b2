"""The inventory reads what kubectl exports and refuses, in one line, what the API would."""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from kubectl_bpf.gadgets.policy_test import inventory

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-1
  containers:
    - name: web
      ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]
status:
  phase: Running
  podIP: 10.0.0.9
  podIPs: [{ip: 10.0.0.9}, {ip: "fd00::9"}]
"""
POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: http}]}]
"""


def test_kind_list_and_multi_document_stream_read_alike() -> None:
    as_list = yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                              "items": [yaml.safe_load(POD), yaml.safe_load(POLICY)]})
    as_stream = f"{POD}\n---\n{POLICY}\n---\n"
    for text in (as_list, as_stream):
        inv = inventory.load_inventory(text)
        assert [pod.key for pod in inv.pods] == ["shop/web-1"]
        assert [policy.key for policy in inv.policies] == ["shop/web"]


def test_a_written_namespace_name_label_is_overwritten_with_the_name_as_the_api_server_does() -> None:
    inv = inventory.load_inventory("kind: Namespace\nmetadata:\n  name: shop\n  labels:\n"
                                   "    kubernetes.io/metadata.name: other\n    team: blue\n")
    assert inv.namespaces["shop"].labels == {"kubernetes.io/metadata.name": "shop", "team": "blue"}


def test_pod_fields_are_read_with_api_defaults() -> None:
    (pod,) = inventory.load_inventory(POD).pods
    assert pod.labels == {"app": "web"}
    assert pod.ips == (ipaddress.ip_address("10.0.0.9"), ipaddress.ip_address("fd00::9"))
    assert pod.ports == (inventory.ContainerPort(8080, "TCP", "http"),
                         inventory.ContainerPort(53, "UDP", None))
    assert (pod.phase, pod.node_name, pod.host_network) == ("Running", "node-1", False)
    assert pod.find_port("http", None) == inventory.ContainerPort(8080, "TCP", "http")
    assert pod.find_port("http", "UDP") is None


def test_pod_ip_falls_back_to_status_pod_ip() -> None:
    (pod,) = inventory.load_inventory(POD.replace("  podIPs: [{ip: 10.0.0.9}, {ip: \"fd00::9\"}]\n", "")).pods
    assert pod.ips == (ipaddress.ip_address("10.0.0.9"),)


def test_typed_lists_give_their_items_a_kind() -> None:
    text = "kind: PodList\nitems:\n- metadata: {name: a, namespace: x}\n- metadata: {name: b, namespace: x}\n"
    assert [pod.key for pod in inventory.load_inventory(text).pods] == ["x/a", "x/b"]


def test_other_kinds_and_other_policy_apis_are_skipped_with_a_warning() -> None:
    text = f"""{POD}
---
{{kind: Service, apiVersion: v1, metadata: {{name: s, namespace: shop}}}}
---
{{kind: NetworkPolicy, apiVersion: crd.projectcalico.org/v1, metadata: {{name: c, namespace: shop}}}}
"""
    inv = inventory.load_inventory(text)
    assert inv.policies == ()
    assert "skipped 1 object(s) of kind Service: not evaluated" in inv.warnings
    assert "skipped 1 object(s) of kind crd.projectcalico.org/v1 NetworkPolicy: not evaluated" in inv.warnings


def test_effective_policy_types_follow_api_defaulting() -> None:
    docs = [
        {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "x"}, "spec": spec}
        for name, spec in {
            "none": {"podSelector": {}},
            "egress-rules": {"podSelector": {}, "egress": [{}]},
            "empty-egress": {"podSelector": {}, "egress": []},
            "egress-type": {"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]},
        }.items()]
    inv = inventory.parse_objects(docs)
    types = {policy.name: (policy.isolates_ingress, policy.isolates_egress, len(policy.ingress))
             for policy in inv.policies}
    assert types == {"none": (True, False, 0), "egress-rules": (True, True, 0),
                     "empty-egress": (True, False, 0), "egress-type": (False, True, 0)}


def test_empty_document_and_empty_input_give_an_empty_inventory() -> None:
    inv = inventory.load_inventory("---\n---\n")
    assert (inv.pods, inv.policies, inv.namespaces) == ((), (), {})


@pytest.mark.parametrize(("text", "message"), [
    ("kind: [unclosed", "not valid YAML: "),
    ("just a string", "document 1: expected a mapping, got str"),
    ("kind: List\nitems: {a: 1}", "document 1.items: expected a list"),
    ("metadata: {name: a}", "document 1: has no kind"),
    ("kind: Pod\nmetadata: {namespace: x}", "Pod: metadata.name must be a non-empty string"),
    ("kind: Pod\nmetadata: {name: a, labels: {tier: 1}}", "label tier=1 must be a string (quote it)"),
    ("kind: Pod\nmetadata: {name: a}\nspec: {containers: [{ports: [{containerPort: '80'}]}]}",
     "containerPort: '80' is a string"),
    ("kind: Pod\nmetadata: {name: a}\nspec: {containers: [{ports: [{containerPort: 0}]}]}",
     "must be a port number 1-65535, got 0"),
    ("kind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.0.0.300}", "is not an IP address"),
    ("kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: a}", "Pod default/a appears twice"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {policyTypes: [ingress]}",
     "'ingress' is not Ingress or Egress"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {matchExpressions: "
     "[{key: a, operator: Equals, values: [b]}]}}", "'Equals' is not one of In, NotIn, Exists, DoesNotExist"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {matchExpressions: "
     "[{key: a, operator: In}]}}", "In needs at least one value"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {matchExpressions: "
     "[{key: a, operator: Exists, values: [b]}]}}", "Exists takes no values"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{from: [{}]}]}",
     "spec.ingress[0].from[0]: a peer needs podSelector, namespaceSelector or ipBlock"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, "
     "podSelector: {}}]}]}", "ipBlock cannot be combined with a selector"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0/8}}]}]}",
     "'10.0.0/8' is not a CIDR"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, "
     "except: [10.1.0.0/24]}}]}]}", "10.1.0.0/24 is not strictly inside 10.0.0.0/16"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, "
     "except: [10.0.0.0/16]}}]}]}", "10.0.0.0/16 is not strictly inside 10.0.0.0/16 (the API server rejects"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{ports: [{port: http, endPort: 90}]}]}",
     "endPort: needs a numeric port"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{ports: [{port: 90, endPort: 80}]}]}",
     "endPort: 80 is below port 90"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{ports: [{port: 80, protocol: tcp}]}]}",
     "'tcp' is not one of TCP, UDP, SCTP"),
    ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{ports: [{port: Not_A_Name}]}]}",
     "'Not_A_Name' is not a valid port name"),
])
def test_malformed_input_is_refused_in_one_line_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load_inventory(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
