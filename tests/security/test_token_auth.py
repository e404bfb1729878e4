"""Bearer tokens: every RPC but health needs one; streams too; tokens never reach the logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from taskrun.v1 import task_run_service_pb2, task_run_service_pb2_grpc
from taskrun_client import AsyncTaskRunClient, ClientConfig
from taskrun_server.api.auth_interceptor import presented_token
from taskrun_server.security.tokens import TokenSet
from taskrun_server.server import RunningServer
from tests.factories import reflection_stream
from tests.processes import run_cli
from tests.security.conftest import Pki, StartServer

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
async def guarded(start: StartServer) -> RunningServer:
    return await start(auth_tokens=f"other-token, {TOKEN}")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def count_with(server: RunningServer, metadata: tuple[tuple[str, str], ...]) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        answer = await stub.CountTaskRuns(
            task_run_service_pb2.CountTaskRunsRequest(), metadata=metadata, timeout=5
        )
        return int(answer.count)


async def code_of(server: RunningServer, metadata: tuple[tuple[str, str], ...]) -> object:
    try:
        await count_with(server, metadata)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_call_without_a_token_is_unauthenticated(guarded: RunningServer) -> None:
    assert await code_of(guarded, ()) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_call_with_a_wrong_token_is_unauthenticated(guarded: RunningServer) -> None:
    assert await code_of(guarded, bearer("guess")) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_in_another_scheme_is_unauthenticated(guarded: RunningServer) -> None:
    metadata = (("authorization", f"Basic {TOKEN}"),)
    assert await code_of(guarded, metadata) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_call_with_a_configured_token_is_served(guarded: RunningServer) -> None:
    assert await code_of(guarded, bearer(TOKEN)) == grpc.StatusCode.OK
    assert await code_of(guarded, bearer("other-token")) == grpc.StatusCode.OK


async def test_health_checking_needs_no_token(guarded: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the stub packages omit its methods
        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("package", ["grpc.reflection.v1", "grpc.reflection.v1alpha"])
async def test_reflection_needs_a_token(guarded: RunningServer, package: str) -> None:
    """Reflection tells a stranger every method: it is guarded like the methods themselves."""
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        call = reflection_stream(channel, package)
        # Refused on its metadata alone. No request is sent: a write racing the server's early
        # status would fail on the client side and surface as INTERNAL instead.
        assert await call(timeout=5).code() == grpc.StatusCode.UNAUTHENTICATED
        answers = [r async for r in call(iter([request]), metadata=bearer(TOKEN), timeout=5)]
    assert answers[0].list_services_response.service


async def test_a_subscription_without_a_token_is_unauthenticated(guarded: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        stream = stub.SubscribeScheduledTasks(
            task_run_service_pb2.SubscribeScheduledTasksRequest(task_keys=["k"]), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_subscription_with_a_token_is_served(guarded: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        stream = stub.SubscribeScheduledTasks(
            task_run_service_pb2.SubscribeScheduledTasksRequest(task_keys=["k"]),
            metadata=bearer(TOKEN),
            timeout=0.5,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
    # Nothing was scheduled: the open stream runs into its deadline, not into a refusal.
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_python_client_sends_its_token(guarded: RunningServer) -> None:
    config = ClientConfig(target=f"127.0.0.1:{guarded.port}", token=TOKEN, timeout=5)
    async with AsyncTaskRunClient(config) as client:
        assert await client.count_task_runs() >= 0


async def test_tokens_never_reach_the_logs(
    start: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        server = await start(auth_tokens=TOKEN)
        await code_of(server, bearer(TOKEN))
        await code_of(server, bearer(TOKEN + "-wrong"))
    assert TOKEN not in caplog.text
    assert "1 token(s)" in caplog.text


def test_tokens_load_from_a_file_skipping_comments(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# ops team\nalpha\n\n  beta  \n")
    tokens = TokenSet.load("gamma", file)
    assert len(tokens) == 3
    assert tokens.accepts("beta") and tokens.accepts("gamma")
    assert not tokens.accepts("# ops team") and not tokens.accepts("")
    assert "alpha" not in repr(tokens)


def test_only_the_bearer_scheme_is_read() -> None:
    assert presented_token((("authorization", "Bearer abc"),)) == "abc"
    assert presented_token((("authorization", "bearer abc"),)) == "abc"
    assert presented_token((("authorization", "Basic abc"),)) is None
    assert presented_token(None) is None


async def test_the_cli_connects_with_tls_and_a_token_from_the_environment(
    start: StartServer, pki: Pki
) -> None:
    server = await start(tls_cert_file=pki.cert_file, tls_key_file=pki.key_file, auth_tokens=TOKEN)
    ca_file = pki.cert_file.with_name("ca.pem")
    ca_file.write_bytes(pki.ca_pem)
    code, out, err = await run_cli(
        "--target",
        f"127.0.0.1:{server.port}",
        "--ca-file",
        str(ca_file),
        "--output",
        "json",
        "count",
        env={"TASKRUN_TOKEN": TOKEN},
    )
    assert code == 0, err
    assert "count" in json.loads(out)


async def test_an_unknown_method_is_refused_like_a_real_one_without_a_token(
    guarded: RunningServer,
) -> None:
    """Otherwise UNIMPLEMENTED versus UNAUTHENTICATED lists the methods to anyone."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        for method in ("/taskrun.v1.TaskRunService/NoSuchMethod", "/nope.Service/Call"):
            call = channel.unary_unary(method, lambda b: b, lambda b: b)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"", timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await call(b"", timeout=5, metadata=bearer(TOKEN))
            assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
