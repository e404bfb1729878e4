"""Servers with TLS, client certificates or tokens, each started for one test on the session's
database, and the certificates they use (a private CA made by trustme)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from taskrun_server.server import RunningServer, start_server
from taskrun_server.settings import Settings

StartServer = Callable[..., Awaitable[RunningServer]]


@dataclass(frozen=True)
class Pki:
    """A server CA and certificate, and a separate CA for client certificates."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path
    client_ca_file: Path
    client_cert_pem: bytes
    client_key_pem: bytes
    stranger_cert_pem: bytes  # signed by a CA the server does not trust
    stranger_key_pem: bytes


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server_cert = server_ca.issue_cert("127.0.0.1", "localhost")
    server_cert.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    server_cert.private_key_pem.write_to_path(str(folder / "server.key"))
    client_ca.cert_pem.write_to_path(str(folder / "client-ca.pem"))
    client = client_ca.issue_cert("worker@taskrun.test")
    stranger = other_ca.issue_cert("stranger@taskrun.test")
    return Pki(
        ca_pem=server_ca.cert_pem.bytes(),
        cert_file=folder / "server.pem",
        key_file=folder / "server.key",
        client_ca_file=folder / "client-ca.pem",
        client_cert_pem=client.cert_chain_pems[0].bytes(),
        client_key_pem=client.private_key_pem.bytes(),
        stranger_cert_pem=stranger.cert_chain_pems[0].bytes(),
        stranger_key_pem=stranger.private_key_pem.bytes(),
    )


@pytest.fixture
async def start(database_url: str) -> AsyncIterator[StartServer]:
    """start(**settings): a server on a free port with those settings, stopped after the test."""
    async with AsyncExitStack() as stack:

        async def starter(**overrides: Any) -> RunningServer:
            settings = Settings(
                database_url=database_url,
                port=0,
                metrics_enabled=False,
                dashboard_port=0,
                **overrides,
            )
            running = await start_server(settings, database_url)
            stack.push_async_callback(running.stop, 0.5)
            return running

        yield starter
