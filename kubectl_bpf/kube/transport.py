"""Why the API server could not be reached or trusted, in one line.

Every API call of the plugin can fail below HTTP: refused, no answer in time,
a TLS certificate the kubeconfig's CA did not sign, credentials the server
rejects. The callers wrap those errors (``raise ... from``) with their own
context; ``unreachable`` walks that chain back to the transport failure and
names the server and the cause, as kubectl does.

Imports nothing heavy at module level: the CLI calls this on every failure,
including those of ``--local`` runs that never load the Kubernetes client.
"""

from __future__ import annotations

import errno
import socket
import ssl
import sys
from typing import Iterator, Optional

from kubectl_bpf.kube import errors

# Set by client.connect: the server of this process's one cluster, for the
# failures (a bare socket timeout, a TLS error) that do not carry it.
_server: Optional[str] = None

HINT = "is the context right? (kubectl config current-context)"
# Every API call without --request-timeout gets this (kubectl has none and can
# hang on a black-holed server). Watches and log streams keep their own read
# windows (watch.py, logs.py) but connect within it too.
DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


def remember_server(url: str) -> None:
    global _server
    _server = url


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and urllib3's wrapped reasons."""
    seen: set[int] = set()
    pending: list[Optional[BaseException]] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        pending.extend([reason if isinstance(reason, BaseException) else None,
                        current.__cause__, current.__context__])


def _server_of(chain: list[BaseException]) -> str:
    for exc in chain:
        pool = getattr(exc, "pool", None)
        if pool is not None and getattr(pool, "host", None):
            return f"{getattr(pool, 'scheme', 'https')}://{pool.host}:{pool.port}"
        conn = getattr(exc, "conn", None)
        if conn is not None and getattr(conn, "host", None):
            return f"https://{conn.host}:{conn.port}"
    return _server or "(unknown server)"


def _message(chain: list[BaseException], server: str) -> Optional[str]:
    """The line for the first transport failure in the chain, or None."""
    urllib3_errors = sys.modules.get("urllib3.exceptions")  # never imported: none of its errors
    timeouts: tuple[type[BaseException], ...] = (socket.timeout, TimeoutError)
    unresolved: tuple[type[BaseException], ...] = (socket.gaierror,)
    tls: tuple[type[BaseException], ...] = (ssl.SSLError,)
    closed: tuple[type[BaseException], ...] = (ConnectionResetError,)
    connection: tuple[type[BaseException], ...] = ()
    if urllib3_errors is not None:
        timeouts += (urllib3_errors.ReadTimeoutError, urllib3_errors.ConnectTimeoutError)
        unresolved += (urllib3_errors.NameResolutionError,)
        tls += (urllib3_errors.SSLError,)
        closed += (urllib3_errors.ProtocolError,)
        connection = (urllib3_errors.NewConnectionError, urllib3_errors.MaxRetryError)

    def reach(cause: object) -> str:
        return f"cannot reach the API server {server} ({cause}); {HINT}"

    def first(*types: type[BaseException]) -> Optional[BaseException]:
        return next((exc for exc in chain if isinstance(exc, types)), None)

    # Most specific first, each over the whole chain: urllib3's NewConnectionError
    # is a ConnectTimeoutError even when the real cause is a refusal.
    if any(getattr(exc, "status", None) == 401 for exc in chain):
        return (f"the API server {server} rejects the kubeconfig's credentials (401 Unauthorized): "
                "an expired or revoked token or certificate?")
    verify = first(ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        detail = verify.verify_message or verify.reason or "verification failed"
        return (f"cannot trust the API server {server} (TLS: certificate verify failed: {detail}): "
                "is the kubeconfig's certificate-authority this server's?")
    handshake = first(*tls)
    if handshake is not None:
        reason = getattr(handshake, "reason", None) or handshake
        return f"cannot trust the API server {server} (TLS handshake failed: {reason})"
    if any(getattr(exc, "errno", None) == errno.ECONNREFUSED for exc in chain):
        return reach("connection refused")
    if first(*unresolved):
        return reach("its host name does not resolve")
    if first(*timeouts):
        return (f"no answer from the API server {server} in time (--request-timeout, default "
                f"{DEFAULT_TIMEOUT_S:g}s); {HINT}")
    if first(*closed):
        return f"lost the connection to the API server {server} (closed by the server); {HINT}"
    unreachable_net = next((exc for exc in chain if isinstance(exc, OSError) and exc.errno in (
        errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNABORTED)), None)
    if isinstance(unreachable_net, OSError):
        return reach(unreachable_net.strerror or unreachable_net)
    other = first(*connection)  # no known cause: a connection error still means "unreachable"
    if other is not None:
        return reach(str(getattr(other, "reason", None) or other).rsplit(": ", 1)[-1])
    return None


def unreachable(exc: BaseException) -> Optional[errors.UnreachableError]:
    """The one-line UnreachableError that ``exc`` really is, or None when the
    chain holds no failure to reach or trust the API server."""
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, errors.UnreachableError):
            return item
    message = _message(chain, _server_of(chain))
    return None if message is None else errors.UnreachableError(message)
