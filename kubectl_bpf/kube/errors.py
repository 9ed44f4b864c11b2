"""Cluster-side failures, each with the exit code the CLI reports.

ApiException is wrapped (``raise ... from``) so the CLI can print one line
and pick the code without knowing the client library.
"""

from __future__ import annotations

import json
from typing import Optional

from kubectl_bpf.protocol import exitcodes


class KubeError(Exception):
    exit_code = exitcodes.FAILURE


class ConfigError(KubeError):
    """No usable kubeconfig or context."""

    exit_code = exitcodes.USAGE


class UnreachableError(KubeError):
    """The API server cannot be reached or trusted, or the kubeconfig cannot be
    read at all (transport.py builds the line)."""

    exit_code = exitcodes.UNREACHABLE


class NotFoundError(KubeError):
    exit_code = exitcodes.NOT_FOUND


class TargetStateError(KubeError):
    """The target exists but cannot be traced (not Running, no IP, Windows node)."""

    exit_code = exitcodes.TARGET_STATE


class PermissionDeniedError(KubeError):
    """RBAC refused a call the plugin needs."""

    exit_code = exitcodes.PERMISSION


class AdmissionError(KubeError):
    """Admission (PodSecurity, a webhook, a quota) refused the tracer pod."""

    exit_code = exitcodes.PERMISSION


class StartError(KubeError):
    """The tracer pod failed to start; the message carries the real reason."""


class StartTimeoutError(KubeError):
    exit_code = exitcodes.TIMEOUT


def api_message(exc: Exception) -> str:
    """The Status message of an ApiException body, else its reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
            if message:
                return str(message)
        except (ValueError, AttributeError):
            pass
    return str(getattr(exc, "reason", None) or exc)


def from_api_exception(exc: Exception, what: str, *, not_found: Optional[str] = None) -> KubeError:
    """Map an ApiException (or a transport error) to our hierarchy."""
    from kubectl_bpf.kube import transport  # noqa: PLC0415 -- transport imports this module

    status = getattr(exc, "status", None)
    unreachable = transport.unreachable(exc)
    if unreachable is not None:
        return unreachable
    message = api_message(exc)
    if status == 404:
        return NotFoundError(not_found or f"{what}: not found")
    if status == 403:
        return PermissionDeniedError(f"{what}: forbidden: {message}")
    if status is None:
        return KubeError(f"{what}: cannot reach the API server: {message}")
    return KubeError(f"{what}: {message}")
