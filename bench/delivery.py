"""Delivery benchmarks: throughput draining a backlog, and schedule-to-delivery latency."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.measure import Row, percentile
from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb

PENDING = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING)


def _due_now() -> state_pb2.StateCreate:
    return state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)


async def _consume(
    stub: Any,
    key: str,
    until: int,
    received: list[float],
    lags: list[float],
    finished: asyncio.Event,
) -> None:
    """Receive, settle through SetTaskRunState, and note when and how late each came."""
    call = stub.SubscribeScheduledTasks(
        pb.SubscribeScheduledTasksRequest(task_keys=[key], client_id="bench", prefetch=10)
    )
    try:
        async for message in call:
            arrived = datetime.now(UTC)
            due = message.task_run.state.state_details.scheduled_time.ToDatetime(tzinfo=UTC)
            lags.append((arrived - due).total_seconds())
            await stub.SetTaskRunState(
                pb.SetTaskRunStateRequest(task_run_id=message.task_run.id, state=PENDING)
            )
            received.append(time.perf_counter())
            if len(received) >= until:
                finished.set()
                return
    finally:
        call.cancel()


async def bench_throughput(stub: Any, subscribers: int, backlog: int) -> Row:
    key = f"bench.drain.{uuid.uuid4().hex[:6]}"
    for start in range(0, backlog, 200):
        await asyncio.gather(
            *(
                stub.CreateTaskRun(
                    pb.CreateTaskRunRequest(task_key=key, dynamic_key=str(i), state=_due_now())
                )
                for i in range(start, min(start + 200, backlog))
            )
        )
    received: list[float] = []
    lags: list[float] = []
    finished = asyncio.Event()
    started = time.perf_counter()
    consumers = [
        asyncio.ensure_future(_consume(stub, key, backlog, received, lags, finished))
        for _ in range(subscribers)
    ]
    await finished.wait()
    elapsed = max(received) - started
    for consumer in consumers:
        consumer.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    gaps = sorted(b - a for a, b in zip(sorted(received), sorted(received)[1:], strict=False))
    return Row(
        name=f"Deliver+settle, {subscribers} subscriber(s), backlog {backlog}",
        ops_per_second=backlog / elapsed,
        p50_ms=percentile(gaps, 0.5) * 1000 if gaps else 0.0,
        p99_ms=percentile(gaps, 0.99) * 1000 if gaps else 0.0,
    )


async def _queue(stub: Any, key: str, backlog: int) -> None:
    """`backlog` runs of `key`, due now, created in batches."""
    for start in range(0, backlog, 500):
        await stub.BatchCreateTaskRuns(
            pb.BatchCreateTaskRunsRequest(
                requests=[
                    pb.CreateTaskRunRequest(task_key=key, dynamic_key=str(i), state=_due_now())
                    for i in range(start, min(start + 500, backlog))
                ]
            )
        )


async def bench_drain(stub: Any, backlog: int, prefetch: int = 500) -> Row:
    """One subscriber drains a queue, settling (to PENDING) each run it receives in batches
    of whatever has arrived (BatchSetTaskRunStates), two batches in flight at most, while it
    keeps reading: how a worker empties a backlog. p50/p99: of the settling calls."""
    key = f"bench.batchdrain.{uuid.uuid4().hex[:6]}"
    await _queue(stub, key, backlog)
    settled: list[float] = []
    calls: list[float] = []
    arrived: asyncio.Queue[str] = asyncio.Queue()
    in_flight = asyncio.Semaphore(2)

    async def settle(run_ids: list[str]) -> None:
        try:
            sent = time.perf_counter()
            answer = await stub.BatchSetTaskRunStates(
                pb.BatchSetTaskRunStatesRequest(
                    requests=[
                        pb.SetTaskRunStateRequest(task_run_id=i, state=PENDING) for i in run_ids
                    ]
                )
            )
            assert all(r.response.status == pb.SET_STATE_STATUS_ACCEPT for r in answer.results), (
                answer
            )
            calls.append(time.perf_counter() - sent)
            settled.extend([time.perf_counter()] * len(run_ids))
        finally:
            in_flight.release()

    async def settler() -> None:
        pending: set[asyncio.Task[None]] = set()
        taken = 0
        while taken < backlog:
            run_ids = [await arrived.get()]
            await in_flight.acquire()  # what arrives meanwhile joins this batch
            while not arrived.empty() and len(run_ids) < 1000:
                run_ids.append(arrived.get_nowait())
            taken += len(run_ids)
            task = asyncio.ensure_future(settle(run_ids))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    call = stub.SubscribeScheduledTasks(
        pb.SubscribeScheduledTasksRequest(task_keys=[key], client_id="bench", prefetch=prefetch)
    )
    started = time.perf_counter()
    settling = asyncio.ensure_future(settler())
    received = 0
    try:
        async for message in call:
            arrived.put_nowait(message.task_run.id)
            received += 1
            if received >= backlog:
                break
        await settling
    finally:
        call.cancel()
    elapsed = max(settled) - started
    return Row(
        name=f"Drain {backlog} queued runs, 1 subscriber, settled in batches",
        ops_per_second=backlog / elapsed,
        p50_ms=percentile(calls, 0.5) * 1000,
        p99_ms=percentile(calls, 0.99) * 1000,
    )


async def bench_latency(stub: Any, subscribers: int, tasks: int, rate: float) -> Row:
    """Tasks due at once, created at `rate` per second while subscribers are idle."""
    key = f"bench.latency.{uuid.uuid4().hex[:6]}"
    received: list[float] = []
    lags: list[float] = []
    finished = asyncio.Event()
    consumers = [
        asyncio.ensure_future(_consume(stub, key, tasks, received, lags, finished))
        for _ in range(subscribers)
    ]
    await asyncio.sleep(0.5)  # let the subscriptions settle into their idle wait
    for i in range(tasks):
        await stub.CreateTaskRun(
            pb.CreateTaskRunRequest(task_key=key, dynamic_key=str(i), state=_due_now())
        )
        await asyncio.sleep(1 / rate)
    await finished.wait()
    for consumer in consumers:
        consumer.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    return Row(
        name=f"Schedule-to-delivery, {subscribers} subscriber(s), {rate:.0f} tasks/s",
        ops_per_second=rate,
        p50_ms=percentile(lags, 0.5) * 1000,
        p99_ms=percentile(lags, 0.99) * 1000,
    )


async def bench_delivery(stub: Any, backlog: int) -> list[Row]:
    rows = [await bench_throughput(stub, n, backlog) for n in (1, 8)]
    rows.append(await bench_drain(stub, 1000))
    rows += [await bench_latency(stub, n, tasks=200, rate=50) for n in (1, 8)]
    return rows
