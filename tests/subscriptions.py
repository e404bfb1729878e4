"""Subscriptions read in the background, and small helpers for tests about delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import TaskRunStub, create_run, now, propose, scheduled, state


class Subscription:
    """A stream read continuously into a queue, so a test can wait for, or rule out, a message
    without cancelling the call (cancelling a pending read cancels a grpc.aio stream)."""

    def __init__(self, stub: TaskRunStub, *keys: str, prefetch: int = 10) -> None:
        request = pb.SubscribeScheduledTasksRequest(
            task_keys=keys, client_id="test", prefetch=prefetch
        )
        self.call: Any = stub.SubscribeScheduledTasks(request)
        self.messages: asyncio.Queue[pb.SubscribeScheduledTasksResponse] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.call:
            await self.messages.put(message)

    async def receive(self, within: float = 10.0) -> pb.SubscribeScheduledTasksResponse:
        return await asyncio.wait_for(self.messages.get(), within)

    async def nothing_within(self, seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return self.messages.empty()

    def cancel(self) -> None:
        self.call.cancel()
        self.reader.cancel()


async def due_run(stub: TaskRunStub, key: str, **fields: Any) -> task_run_pb2.TaskRun:
    return await create_run(
        stub, task_key=key, state=scheduled(now() - timedelta(seconds=1)), **fields
    )


async def settle(stub: TaskRunStub, run_id: str) -> None:
    answer = await propose(stub, run_id, state(state_pb2.STATE_TYPE_PENDING))
    assert answer.status == pb.SET_STATE_STATUS_ACCEPT, answer


Opener = Callable[..., Subscription]
