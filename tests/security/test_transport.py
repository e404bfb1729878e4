"""TLS from files, client certificates (mTLS), and when plaintext is allowed."""

from __future__ import annotations

import re

import grpc
import pytest

from taskrun_client import AsyncTaskRunClient, ClientConfig, RetryPolicy, TaskRunError
from taskrun_server.security.transport import InsecureConfiguration, choose_transport
from tests.security.conftest import Pki, StartServer


def tls_config(port: int, pki: Pki, **extra: object) -> ClientConfig:
    return ClientConfig(
        target=f"127.0.0.1:{port}",
        tls=True,
        root_certificates=pki.ca_pem,
        timeout=3,
        wait_for_ready=False,  # these tests are about the handshake's verdict, at once
        retry=RetryPolicy(max_attempts=1),
        **extra,  # type: ignore[arg-type]
    )


async def count(config: ClientConfig) -> int:
    async with AsyncTaskRunClient(config) as client:
        return await client.count_task_runs()


async def test_a_tls_client_that_trusts_the_ca_is_served(start: StartServer, pki: Pki) -> None:
    server = await start(tls_cert_file=pki.cert_file, tls_key_file=pki.key_file)
    assert await count(tls_config(server.port, pki)) >= 0


async def test_a_plaintext_client_cannot_talk_to_a_tls_server(start: StartServer, pki: Pki) -> None:
    server = await start(tls_cert_file=pki.cert_file, tls_key_file=pki.key_file)
    plain = ClientConfig(
        target=f"127.0.0.1:{server.port}",
        timeout=2,
        wait_for_ready=False,
        retry=RetryPolicy(max_attempts=1),  # the transport's verdict, not a retry's deadline
    )
    with pytest.raises(TaskRunError) as caught:
        await count(plain)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_client_without_a_certificate(start: StartServer, pki: Pki) -> None:
    server = await start(
        tls_cert_file=pki.cert_file,
        tls_key_file=pki.key_file,
        tls_client_ca_file=pki.client_ca_file,
    )
    with pytest.raises(TaskRunError) as caught:
        await count(tls_config(server.port, pki))
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_certificate_from_another_ca(start: StartServer, pki: Pki) -> None:
    server = await start(
        tls_cert_file=pki.cert_file,
        tls_key_file=pki.key_file,
        tls_client_ca_file=pki.client_ca_file,
    )
    stranger = tls_config(
        server.port,
        pki,
        certificate_chain=pki.stranger_cert_pem,
        private_key=pki.stranger_key_pem,
    )
    with pytest.raises(TaskRunError) as caught:
        await count(stranger)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_mtls_serves_a_client_with_a_trusted_certificate(
    start: StartServer, pki: Pki
) -> None:
    server = await start(
        tls_cert_file=pki.cert_file,
        tls_key_file=pki.key_file,
        tls_client_ca_file=pki.client_ca_file,
    )
    trusted = tls_config(
        server.port, pki, certificate_chain=pki.client_cert_pem, private_key=pki.client_key_pem
    )
    assert await count(trusted) >= 0


def test_plaintext_is_the_default_only_on_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert choose_transport(host, None, None, None, None).credentials is None
    with pytest.raises(
        InsecureConfiguration, match=re.escape("refusing to serve plaintext on 0.0.0.0")
    ):
        choose_transport("0.0.0.0", None, None, None, None)


def test_plaintext_on_any_address_when_asked_for_explicitly() -> None:
    chosen = choose_transport("0.0.0.0", None, None, None, True)
    assert chosen.credentials is None
    assert "TASKRUN_PLAINTEXT" in chosen.description


def test_half_a_tls_configuration_is_refused(pki: Pki) -> None:
    with pytest.raises(InsecureConfiguration, match="go together"):
        choose_transport("0.0.0.0", pki.cert_file, None, None, None)
    with pytest.raises(InsecureConfiguration, match="needs a server certificate"):
        choose_transport("127.0.0.1", None, None, pki.client_ca_file, None)


def test_an_unreadable_certificate_names_the_file(pki: Pki) -> None:
    missing = pki.cert_file.with_name("missing.pem")
    with pytest.raises(InsecureConfiguration, match=re.escape("missing.pem")):
        choose_transport("0.0.0.0", missing, pki.key_file, None, None)


async def test_a_non_loopback_server_without_tls_does_not_start(start: StartServer) -> None:
    with pytest.raises(InsecureConfiguration):
        await start(host="0.0.0.0")
