"""How the gRPC port is secured: TLS from files, optional client certificates, or plaintext.

Plaintext is chosen only on purpose: explicitly (TASKRUN_PLAINTEXT=true), or by default when
the server binds a loopback address, where nothing outside the machine can listen in.
Anything else without certificates refuses to start rather than silently expose the API.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from taskrun_server.settings import Settings


@dataclass(frozen=True, slots=True)
class TransportSecurity:
    """The decision, with what the start-up log should say about it."""

    credentials: grpc.ServerCredentials | None
    description: str


class InsecureConfiguration(RuntimeError):
    """The settings would serve plaintext on a reachable address, or TLS is half-configured."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InsecureConfiguration(f"cannot read {what} {path}: {error.strerror}") from error


def choose_transport(
    host: str,
    cert_file: Path | None,
    key_file: Path | None,
    client_ca_file: Path | None,
    plaintext: bool | None,
) -> TransportSecurity:
    """TLS when a certificate is configured, else plaintext where that was allowed."""
    if (cert_file is None) != (key_file is None):
        raise InsecureConfiguration("TASKRUN_TLS_CERT_FILE and TASKRUN_TLS_KEY_FILE go together")
    if cert_file is not None and key_file is not None:
        if plaintext:
            raise InsecureConfiguration("TASKRUN_PLAINTEXT=true contradicts TASKRUN_TLS_CERT_FILE")
        pair = (_read(key_file, "TLS key"), _read(cert_file, "TLS certificate"))
        client_ca = _read(client_ca_file, "client CA") if client_ca_file else None
        credentials = grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        mode = "TLS, client certificates required" if client_ca else "TLS"
        return TransportSecurity(credentials, mode)
    if client_ca_file is not None:
        raise InsecureConfiguration("TASKRUN_TLS_CLIENT_CA_FILE needs a server certificate too")
    if plaintext:
        return TransportSecurity(None, "plaintext (TASKRUN_PLAINTEXT=true)")
    if plaintext is None and is_loopback(host):
        return TransportSecurity(None, "plaintext on loopback; set TASKRUN_TLS_* for TLS")
    raise InsecureConfiguration(
        f"refusing to serve plaintext on {host}: set TASKRUN_TLS_CERT_FILE and "
        "TASKRUN_TLS_KEY_FILE, or TASKRUN_PLAINTEXT=true if a proxy terminates TLS"
    )


def dashboard_tls(settings: Settings) -> ssl.SSLContext | None:
    """The dashboard's HTTPS, from the gRPC port's certificate; None: plain HTTP, which is
    allowed where plaintext gRPC is (loopback, or TASKRUN_PLAINTEXT=true)."""
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        return context
    if settings.plaintext or (settings.plaintext is None and is_loopback(settings.dashboard_host)):
        return None
    raise InsecureConfiguration(
        f"refusing to serve the dashboard over plain HTTP on {settings.dashboard_host}: its "
        "login takes a token. Set TASKRUN_TLS_CERT_FILE and TASKRUN_TLS_KEY_FILE, or "
        "TASKRUN_PLAINTEXT=true if a proxy terminates TLS"
    )


def transport_for(settings: Settings) -> TransportSecurity:
    """The decision for the configured host, certificates and plaintext flag."""
    return choose_transport(
        settings.host,
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_client_ca_file,
        settings.plaintext,
    )
