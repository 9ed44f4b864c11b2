"""The API connection: kubeconfig and context resolved once, reused for
every call including cleanup (so Ctrl-C never deletes in another cluster).

kubectl's conventions: ``--kubeconfig``, ``KUBECONFIG`` with several files
(merged by the client library), ``--context``, ``-n`` (else the context's
namespace, else ``default``), ``--request-timeout``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from kubectl_bpf.kube import errors


@dataclasses.dataclass(frozen=True)
class KubeOptions:
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    namespace: Optional[str] = None
    request_timeout_s: Optional[float] = None  # per API call; None: the library's default


@dataclasses.dataclass
class Kube:
    """Typed API handles of one cluster/context/user."""

    api: k8s.ApiClient
    core: k8s.CoreV1Api
    apps: k8s.AppsV1Api
    batch: k8s.BatchV1Api
    authz: k8s.AuthorizationV1Api
    context: str
    user: str
    namespace: str  # the target namespace: -n, else the context's, else "default"
    request_timeout_s: Optional[float]

    def call_options(self) -> dict[str, Any]:
        """Keyword arguments every API call gets (the request timeout)."""
        return {"_request_timeout": self.request_timeout_s} if self.request_timeout_s else {}


def connect(options: KubeOptions) -> Kube:
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=options.kubeconfig)
        chosen = active
        if options.context:
            matching = [c for c in contexts if c["name"] == options.context]
            if not matching:
                raise errors.ConfigError(f"context {options.context!r} not found in kubeconfig")
            chosen = matching[0]
        api = k8s_config.new_client_from_config(config_file=options.kubeconfig, context=chosen["name"],
                                                persist_config=False)
    except ConfigException as exc:
        raise errors.ConfigError(f"no usable kubeconfig: {exc}") from exc
    except OSError as exc:
        raise errors.ConfigError(f"cannot read kubeconfig: {exc}") from exc
    context = chosen.get("context", {}) or {}
    namespace = options.namespace or context.get("namespace") or "default"
    return Kube(api=api, core=k8s.CoreV1Api(api), apps=k8s.AppsV1Api(api), batch=k8s.BatchV1Api(api),
                authz=k8s.AuthorizationV1Api(api), context=chosen["name"], user=context.get("user", ""),
                namespace=namespace, request_timeout_s=options.request_timeout_s)
