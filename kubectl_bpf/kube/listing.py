"""Paged lists as raw JSON: what ``kubectl get -o json`` prints, for code that
parses Kubernetes objects itself (the policy evaluator's inventory) and must
see them exactly as the API serves them, not as the client's models."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from kubectl_bpf.kube import client, errors, jobs

PAGE_SIZE = 500  # objects per list call: bounded memory and response size on big clusters


def list_all(call: Callable[..., Any], what: str, *, call_options: Optional[Mapping[str, Any]] = None
             ) -> list[dict[str, Any]]:
    """Every item of a list call, following ``continue`` tokens."""
    items: list[dict[str, Any]] = []
    token: Optional[str] = None
    while True:
        try:
            response = call(limit=PAGE_SIZE, _continue=token, _preload_content=False, **(call_options or {}))
            page = json.loads(response.data)
        except ApiException as exc:
            raise errors.from_api_exception(exc, what) from exc
        except (OSError, ValueError) as exc:
            raise errors.KubeError(f"{what}: {exc}") from exc
        items.extend(page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


# What namespaces_pods_and_policies reads: cluster-wide lists ("" is every namespace).
INVENTORY_ACCESS = (jobs.Access("list", "namespaces", ""), jobs.Access("list", "pods", ""),
                    jobs.Access("list", "networkpolicies", "", group="networking.k8s.io"))


def namespaces_pods_and_policies(kube: client.Kube) -> tuple[list[dict[str, Any]], ...]:
    """All namespaces, pods and NetworkPolicies of the cluster."""
    options = kube.call_options()
    networking = k8s.NetworkingV1Api(kube.api)
    return (list_all(kube.core.list_namespace, "listing namespaces", call_options=options),
            list_all(kube.core.list_pod_for_all_namespaces, "listing pods", call_options=options),
            list_all(networking.list_network_policy_for_all_namespaces, "listing NetworkPolicies",
                     call_options=options))


def pods_matching(kube: client.Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods a label selector matches (the API server parses the selector)."""
    return list_all(lambda **kw: kube.core.list_namespaced_pod(namespace, label_selector=selector, **kw),
                    f"listing pods matching {selector!r} in namespace {namespace!r}",
                    call_options=kube.call_options())
