"""SIGTERM: in-flight unary calls finish, streams end with UNAVAILABLE, and the process exits
within its grace period."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import psycopg

from devtools.scratch_database import libpq_url
from devtools.server_processes import free_port, start_server_process, wait_until_serving
from taskrun.v1 import state_pb2, task_run_service_pb2, task_run_service_pb2_grpc
from tests.faults.row_lock import row_locked, until_someone_waits

GRACE = 5.0


async def test_sigterm_drains_calls_ends_streams_and_exits_in_time(database_url: str) -> None:
    port = free_port()
    process = start_server_process(database_url, port, GRACE_PERIOD_SECONDS=str(GRACE))
    try:
        await asyncio.to_thread(wait_until_serving, f"127.0.0.1:{port}", time.monotonic() + 60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
            created = await stub.CreateTaskRun(
                task_run_service_pb2.CreateTaskRunRequest(task_key="sigterm", dynamic_key="0")
            )
            run_id = created.task_run.id
            stream = stub.SubscribeScheduledTasks(
                task_run_service_pb2.SubscribeScheduledTasksRequest(task_keys=["sigterm"])
            )
            async with row_locked(database_url, run_id) as lock:
                in_flight = asyncio.ensure_future(
                    stub.SetTaskRunState(
                        task_run_service_pb2.SetTaskRunStateRequest(
                            task_run_id=run_id,
                            state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING),
                        ),
                        timeout=30,
                    )
                )
                await until_someone_waits(lock)
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.sleep(1.0)  # the call is still held by the lock
                assert not in_flight.done()
                # Draining: a new call is refused UNAVAILABLE, with a pushback, not applied.
                late = stub.CreateTaskRun(
                    task_run_service_pb2.CreateTaskRunRequest(task_key="sigterm", dynamic_key="1")
                )
                refused = await late.code()
                trailers = dict(await late.trailing_metadata() or ())
            answer = await asyncio.wait_for(in_flight, 20)  # the lock is gone: it completes

            try:
                await asyncio.wait_for(stream.read(), 20)
                ended = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                ended = error.code()
        exit_code = await asyncio.to_thread(process.wait, GRACE + 10)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert answer.status == task_run_service_pb2.SET_STATE_STATUS_ACCEPT
    assert refused == grpc.StatusCode.UNAVAILABLE
    assert trailers.get("grpc-retry-pushback-ms") == "1000"
    assert not await _run_exists(database_url, "sigterm", "1")
    assert ended == grpc.StatusCode.UNAVAILABLE
    assert exit_code == 0
    assert took < GRACE + 3


async def _run_exists(database_url: str, task_key: str, dynamic_key: str) -> bool:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM task_run WHERE task_key = %s AND dynamic_key = %s",
            (task_key, dynamic_key),
        )
        return await cursor.fetchone() is not None
