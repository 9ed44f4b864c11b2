"""Real local sockets that play a broken API server, and kubeconfigs for them.

No mock of the client library: the plugin's own HTTP stack meets a port that
refuses, a server that accepts and never answers, a TLS server whose
certificate another CA signed, and one that rejects every token. Each
server records the request lines it saw, so a test can prove nothing was
created (no POST, PUT, PATCH or DELETE ever arrived).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import pathlib
import socket
import ssl
import threading
import time
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_ca(tmp: pathlib.Path, label: str) -> tuple[pathlib.Path, pathlib.Path, bytes]:
    """A CA and a server certificate for 127.0.0.1 it signed: (cert, key) files and the CA PEM."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{label} CA")).issuer_name(_name(f"{label} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("kube-apiserver")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp / f"{label}.crt", tmp / f"{label}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(path: pathlib.Path, server: str, *, ca_pem: Optional[bytes] = None,
               client: Optional[tuple[pathlib.Path, pathlib.Path]] = None) -> pathlib.Path:
    """A kubeconfig with a token user, or with ``client`` (cert, key) embedded as
    client-certificate-data/client-key-data; without ``ca_pem`` it skips TLS verification."""
    tls = f"certificate-authority-data: {_b64(ca_pem)}" if ca_pem else "insecure-skip-tls-verify: true"
    user = "{token: not-a-valid-token}" if client is None else (
        f"{{client-certificate-data: {_b64(client[0].read_bytes())}, "
        f"client-key-data: {_b64(client[1].read_bytes())}}}")
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: broken
  cluster:
    server: {server}
    {tls}
users:
- name: someone
  user: {user}
contexts:
- name: broken
  context: {{cluster: broken, user: someone, namespace: shop}}
current-context: broken
""")
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A loopback TCP server on its own thread. ``mode``: "silent" accepts and
    never answers; "unauthorized" answers every request 401 (over TLS when
    ``tls`` is given, as an API server would)."""

    def __init__(self, mode: str, *, tls: Optional[tuple[pathlib.Path, pathlib.Path]] = None) -> None:
        self.mode = mode
        self.requests: list[str] = []  # request lines seen, e.g. "GET /api/v1/... HTTP/1.1"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._context: Optional[ssl.SSLContext] = None
        if tls is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(*tls)
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def wait_for_connection(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self._open, "the client never connected"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}"

    def writes(self) -> list[str]:
        return [line for line in self.requests if not line.startswith(("GET ", "HEAD "))]

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self._open.append(conn)
            if self.mode != "silent":
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            stream = self._context.wrap_socket(conn, server_side=True) if self._context else conn
        except (OSError, ssl.SSLError):
            return  # the client gave up on us (it does not trust the certificate)
        with stream, stream.makefile("rb") as reader:
            self._requests_on(stream, reader)

    def _requests_on(self, stream: socket.socket, reader: Any) -> None:
        try:
            while True:
                line = reader.readline().decode(errors="replace").strip()
                if not line:
                    return
                self.requests.append(line)
                length = 0
                while (header := reader.readline().strip()):
                    name, _, value = header.decode(errors="replace").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reader.read(length)
                body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized",' \
                       b'"reason":"Unauthorized","code":401}'
                stream.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        except (OSError, ValueError):
            return  # the client closed the connection

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._open:
            conn.close()
        self._listener.close()
