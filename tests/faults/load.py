"""A bounded load of retrying clients, and a record of everything the server acknowledged.

Fault tests run it across a fault and then check the record against the database: every
acknowledged run and state must be there, and no run may exist twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

import grpc

from taskrun.v1 import state_pb2, task_run_service_pb2
from taskrun_client import AsyncTaskRunClient, ClientConfig, RetryPolicy, TaskRunError

# Patient enough to ride out a restart of the server or of Postgres: a call waits for a
# connection (wait-for-ready), and the server's UNAVAILABLE answers while Postgres is away ask
# for a retry a second later (pushback), five times at most (gRPC's limit).
PATIENT = RetryPolicy(max_attempts=5, initial_backoff=1.0, max_backoff=5.0)

ACCEPT = task_run_service_pb2.SET_STATE_STATUS_ACCEPT


@dataclass
class Acknowledged:
    """What the server said it stored."""

    prefix: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:8]}")
    keys: set[tuple[str, str]] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)
    state_ids: set[str] = field(default_factory=set)
    scheduled_run_ids: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    @property
    def task_key(self) -> str:
        return f"{self.prefix}.work"

    @property
    def scheduled_key(self) -> str:
        return f"{self.prefix}.scheduled"


def client_for(target: str) -> AsyncTaskRunClient:
    return AsyncTaskRunClient(ClientConfig(target=target, timeout=20, retry=PATIENT))


async def _drive_one(client: AsyncTaskRunClient, record: Acknowledged, key: str) -> None:
    created = await client.create_task_run(record.task_key, key)
    run = created.task_run
    record.keys.add((record.task_key, key))
    record.run_ids.add(run.id)
    record.state_ids.add(run.state.id)
    for kind in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
        answer = await client.set_task_run_state(run.id, kind)
        if answer.status == ACCEPT:
            record.state_ids.add(answer.state.id)


async def _schedule_one(client: AsyncTaskRunClient, record: Acknowledged, key: str) -> None:
    scheduled = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    created = await client.create_task_run(record.scheduled_key, key, state=scheduled)
    record.keys.add((record.scheduled_key, key))
    record.scheduled_run_ids.add(created.task_run.id)


async def drive(target: str, record: Acknowledged, stop: asyncio.Event, worker: int) -> None:
    """Create, run and complete task runs, and schedule background ones, until `stop`."""
    async with client_for(target) as client:
        n = 0
        while not stop.is_set():
            key = f"{worker}-{n}"
            try:
                await _drive_one(client, record, key)
                await _schedule_one(client, record, key)
            except TaskRunError as error:
                record.failures.append(f"{key}: {error.code.name} {error.details}")
            n += 1


async def consume(
    target: str, record: Acknowledged, delivered: set[str], stop: asyncio.Event
) -> None:
    """A worker that settles every delivery (SCHEDULED -> PENDING) and resubscribes when the
    stream breaks, as a real worker would."""
    async with client_for(target) as client:
        while not stop.is_set():
            try:
                async for delivery in client.subscribe_scheduled_tasks(
                    [record.scheduled_key], prefetch=20
                ):
                    await client.set_task_run_state(
                        delivery.task_run.id, state_pb2.STATE_TYPE_PENDING
                    )
                    delivered.add(delivery.task_run.id)
                    if stop.is_set():
                        return
            except (TaskRunError, grpc.aio.AioRpcError):
                await asyncio.sleep(0.2)


async def until_acknowledged_beyond(record: Acknowledged, count: int, seconds: float = 30) -> float:
    """Seconds until the load has had more than `count` runs acknowledged (it recovered)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while len(record.run_ids) <= count:  # noqa: ASYNC110 (the drivers' side effect)
            await asyncio.sleep(0.05)
    return time.monotonic() - started


class Load:
    """Drivers and a settling worker running against `target` until `finish`."""

    def __init__(self, target: str, drivers: int) -> None:
        self.record = Acknowledged()
        self.delivered: set[str] = set()
        self._stop_load, self._stop_consumer = asyncio.Event(), asyncio.Event()
        self._drivers = [
            asyncio.create_task(drive(target, self.record, self._stop_load, n))
            for n in range(drivers)
        ]
        self._consumer = asyncio.create_task(
            consume(target, self.record, self.delivered, self._stop_consumer)
        )

    async def finish(self, drain_seconds: float = 30) -> None:
        """Stop the drivers, give the worker time to settle every scheduled run, stop it."""
        self._stop_load.set()
        await asyncio.gather(*self._drivers)
        deadline = time.monotonic() + drain_seconds
        # Polled: the condition is the side effect of another task, not an event it sets.
        while not self.record.scheduled_run_ids <= self.delivered:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        self._stop_consumer.set()
        self._consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._consumer
