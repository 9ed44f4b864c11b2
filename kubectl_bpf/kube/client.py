"""The API connection: kubeconfig and context resolved once, reused for
every call including cleanup (so Ctrl-C never deletes in another cluster).

kubectl's conventions: ``--kubeconfig``, ``KUBECONFIG`` with several files
(merged by the client library), ``--context``, ``-n`` (else the context's
namespace, else ``default``), ``--request-timeout``.

Three things the library does not do for us, each for a measured reason:
the API classes are built on first use (``CoreV1Api`` alone imports ~300
pydantic models, 0.6-1.2 s), the reads a command starts with skip them
entirely, and the kubeconfig's key, certificate and CA never touch the disk
(the library writes them to ``/tmp`` and removes them only at exit, so any
SIGKILL left the private key behind).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import TYPE_CHECKING, Any, Optional, cast

import urllib3
import yaml
from kubernetes.client import api_client, configuration
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from kubectl_bpf.kube import errors, transport

if TYPE_CHECKING:
    from kubernetes import client as k8s


@dataclasses.dataclass(frozen=True)
class KubeOptions:
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    namespace: Optional[str] = None
    request_timeout_s: Optional[float] = None  # per API call; None: transport.DEFAULT_TIMEOUT_S


@dataclasses.dataclass
class Kube:
    """Typed API handles of one cluster/context/user."""

    api: api_client.ApiClient
    core: k8s.CoreV1Api
    apps: k8s.AppsV1Api
    batch: k8s.BatchV1Api
    authz: k8s.AuthorizationV1Api
    context: str
    user: str
    namespace: str  # the target namespace: -n, else the context's, else "default"
    request_timeout_s: Optional[float]

    def call_options(self) -> dict[str, Any]:
        """Keyword arguments every API call gets: the request timeout, never none
        (a black-holed server would hang the command)."""
        if self.request_timeout_s:
            return {"_request_timeout": self.request_timeout_s}
        return {"_request_timeout": (transport.CONNECT_TIMEOUT_S, transport.DEFAULT_TIMEOUT_S)}

    def connect_timeout_s(self) -> float:
        """The connect part of a watch's or log stream's timeout: their reads wait
        for events by design, but reaching the server honours --request-timeout."""
        if self.request_timeout_s:
            return min(self.request_timeout_s, transport.CONNECT_TIMEOUT_S)
        return transport.CONNECT_TIMEOUT_S


class _LazyApi:
    """An API class of the client library, built on first attribute access."""

    def __init__(self, api: api_client.ApiClient, class_name: str) -> None:
        self._api = api
        self._class_name = class_name
        self._real: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            from kubernetes import client as k8s  # noqa: PLC0415 -- the slow part, only when used

            self._real = getattr(k8s, self._class_name)(self._api)
        return getattr(self._real, name)


class _LazyCoreApi(_LazyApi):
    """CoreV1Api whose two first reads of every cluster command (the target pod,
    and its namespace when the pod is missing) need no API class: a typo'd pod
    is reported before the 300 models load. Same signatures, results and
    ApiException as the library's."""

    def _read(self, path: str, model: str, **call: Any) -> Any:
        method, url, headers, _body, _post = self._api.param_serialize(
            "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = self._api.call_api(method, url, header_params=headers,
                                      _request_timeout=call.get("_request_timeout"))
        response.read()
        return self._api.response_deserialize(response, {"200": model}).data

    def read_namespaced_pod(self, name: str, namespace: str, **call: Any) -> Any:
        return self._read(f"/api/v1/namespaces/{namespace}/pods/{name}", "V1Pod", **call)

    def read_namespace(self, name: str, **call: Any) -> Any:
        return self._read(f"/api/v1/namespaces/{name}", "V1Namespace", **call)


# Credentials (key, certificate, CA) of this process, as memory files: the
# kernel frees them when the process ends, however it ends.
_memory_files: dict[bytes, str] = {}


def _memory_file(content: Any, _temp_file_path: Any = None, force_recreate: bool = False) -> str:
    """Replacement for the library's ``_create_temp_file_with_content``: a
    memfd (MFD_CLOEXEC: children get no copy) named by its /proc/self/fd path,
    which urllib3 opens at every new connection."""
    data = content.encode() if isinstance(content, str) else bytes(content)
    if data not in _memory_files or force_recreate:
        fd = os.memfd_create("kubectl-bpf-credential", os.MFD_CLOEXEC)
        os.write(fd, data)
        _memory_files[data] = f"/proc/self/fd/{fd}"
    return _memory_files[data]


if hasattr(os, "memfd_create"):  # Linux; elsewhere the library's temp files stay
    # The library looks the function up at each call; a unit test fails if it is renamed.
    kube_config._create_temp_file_with_content = _memory_file


def _load(options: KubeOptions) -> tuple[api_client.ApiClient, dict[str, Any]]:
    """The library's client for the chosen context, and that context."""
    where = options.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=options.kubeconfig)
        chosen = active
        if options.context:
            matching = [c for c in contexts if c["name"] == options.context]
            if not matching:
                raise errors.ConfigError(f"context {options.context!r} not found in kubeconfig {where}")
            chosen = matching[0]
        if not isinstance(chosen, dict) or "name" not in chosen:
            raise errors.ConfigError(f"kubeconfig {where} has no current context: give --context")
        settings = configuration.Configuration()
        kube_config.load_kube_config(config_file=options.kubeconfig, context=chosen["name"],
                                     client_configuration=settings, persist_config=False)
    except ConfigException as exc:
        raise errors.UnreachableError(f"no usable kubeconfig ({where}): {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise errors.UnreachableError(f"kubeconfig {where} is not valid YAML{at}: "
                                      f"{getattr(exc, 'problem', None) or exc}") from exc
    except UnicodeDecodeError as exc:
        raise errors.UnreachableError(f"kubeconfig {where} is not text (a binary file?)") from exc
    except OSError as exc:
        raise errors.UnreachableError(f"cannot read kubeconfig {where}: {exc.strerror or exc}") from exc
    except (AttributeError, TypeError, KeyError, ValueError) as exc:  # YAML, but not a kubeconfig
        raise errors.UnreachableError(f"kubeconfig {where} is not a kubeconfig: {exc}") from exc
    # One retry of a refused or reset connection (kubectl retries none); a read
    # that timed out is not repeated, so --request-timeout is the real bound.
    settings.retries = urllib3.util.Retry(total=1, connect=1, read=0, other=0, status=0, redirect=0,
                                          raise_on_status=False)
    return api_client.ApiClient(settings), chosen


def connect(options: KubeOptions) -> Kube:
    """Resolve the kubeconfig and context; no API call is made yet."""
    # kubeconfigs with insecure-skip-tls-verify would warn once per request.
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    api, chosen = _load(options)
    transport.remember_server(str(api.configuration.host))
    context = chosen.get("context", {}) or {}
    namespace = options.namespace or context.get("namespace") or "default"
    return Kube(api=api, core=cast("k8s.CoreV1Api", _LazyCoreApi(api, "CoreV1Api")),
                apps=cast("k8s.AppsV1Api", _LazyApi(api, "AppsV1Api")),
                batch=cast("k8s.BatchV1Api", _LazyApi(api, "BatchV1Api")),
                authz=cast("k8s.AuthorizationV1Api", _LazyApi(api, "AuthorizationV1Api")),
                context=chosen["name"], user=context.get("user", ""), namespace=namespace,
                request_timeout_s=options.request_timeout_s)
