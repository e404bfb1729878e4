"""TaskWorker: run plain Python functions for the background task runs the server delivers.

    worker = TaskWorker(ClientConfig(target="127.0.0.1:50051"), concurrency=4)

    @worker.task("double")
    def double(run: TaskRun) -> int:
        return int(run.labels["x"]) * 2

    worker.run()   # until SIGTERM or SIGINT

For each delivery the worker proposes PENDING, then RUNNING, calls the function with the
TaskRun, and proposes COMPLETED with the result as state data (JSON), or FAILED with the
exception as the message. It follows the server's answers: WAIT sleeps and proposes again;
REJECT and ABORT leave the run to orchestration (a failure within the retry budget comes back
as AwaitingRetry and is delivered again when due; a cached run comes back COMPLETED).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format, struct_pb2

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.async_client import AsyncTaskRunClient
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError

logger = logging.getLogger(__name__)

TaskFunction = Callable[[task_run_pb2.TaskRun], Any]

ACCEPT = pb.SET_STATE_STATUS_ACCEPT
WAIT = pb.SET_STATE_STATUS_WAIT


class TaskWorker:
    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        concurrency: int = 4,
        client_id: str = "worker",
        max_backoff: float = 10.0,
    ) -> None:
        self.config = config or ClientConfig()
        self.concurrency = concurrency
        self.client_id = client_id
        self.max_backoff = max_backoff
        self.functions: dict[str, TaskFunction] = {}
        self.completed = 0
        self.failed = 0
        self._stopping = asyncio.Event()

    def task(self, key: str) -> Callable[[TaskFunction], TaskFunction]:
        """Decorator: run this function for task runs whose task_key is `key`."""

        def register(function: TaskFunction) -> TaskFunction:
            self.functions[key] = function
            return function

        return register

    def stop(self) -> None:
        """Stop taking deliveries; runs in progress finish."""
        self._stopping.set()

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (blocking)."""
        asyncio.run(self.serve(handle_signals=True))

    async def serve(self, *, handle_signals: bool = False) -> None:
        """Subscribe and work until stop(); resubscribe with backoff when the stream breaks."""
        if not self.functions:
            raise ValueError("register at least one task function first")
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        backoff = 0.1
        async with AsyncTaskRunClient(self.config) as client:
            while not self._stopping.is_set():
                try:
                    await self._consume(client, slots, running)
                    backoff = 0.1
                except TaskRunError as error:
                    logger.warning("subscription ended (%s); resubscribing", error.code.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, self.max_backoff)
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _consume(
        self, client: AsyncTaskRunClient, slots: asyncio.Semaphore, running: set[asyncio.Task[None]]
    ) -> None:
        stream = client.subscribe_scheduled_tasks(
            list(self.functions), prefetch=self.concurrency, client_id=self.client_id
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                following = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait({following, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    following.cancel()  # unwinds the generator (it cancels the call) ...
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await following  # ... which must finish before aclose()
                    return
                try:
                    delivery = following.result()
                except StopAsyncIteration:
                    return
                await slots.acquire()
                task = asyncio.ensure_future(self._execute(client, delivery.task_run, slots))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            stop.cancel()
            await stream.aclose()

    async def _execute(
        self, client: AsyncTaskRunClient, run: task_run_pb2.TaskRun, slots: asyncio.Semaphore
    ) -> None:
        try:
            for step in (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING):
                if not await self._propose(client, run.id, state_pb2.StateCreate(type=step)):
                    return
            final = await self._call(run)
            if await self._propose(client, run.id, final):
                if final.type == state_pb2.STATE_TYPE_COMPLETED:
                    self.completed += 1
                else:
                    self.failed += 1
        except TaskRunError as error:
            logger.warning("task run %s: %s", run.id, error)
        finally:
            slots.release()

    async def _call(self, run: task_run_pb2.TaskRun) -> state_pb2.StateCreate:
        """Run the function; its result becomes COMPLETED data, its exception FAILED."""
        function = self.functions[run.task_key]
        try:
            result = function(run)
            if inspect.isawaitable(result):
                result = await result
        except Exception as error:
            return state_pb2.StateCreate(
                type=state_pb2.STATE_TYPE_FAILED, message=f"{type(error).__name__}: {error}"
            )
        completed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
        if result is not None:
            completed.data.CopyFrom(json_format.ParseDict(result, struct_pb2.Value()))
        return completed

    async def _propose(
        self, client: AsyncTaskRunClient, run_id: str, proposal: state_pb2.StateCreate
    ) -> bool:
        """Propose until the server decides; True when the proposal itself was stored."""
        while True:
            answer = await client.set_task_run_state(run_id, proposal)
            if answer.status == ACCEPT:
                return True
            if answer.status != WAIT:
                logger.info(
                    "task run %s: %s (%s)",
                    run_id,
                    pb.SetStateStatus.Name(answer.status),
                    answer.details.reason,
                )
                return False
            # Each call copies the proposal and gives the copy a fresh transition id.
            await asyncio.sleep(max(answer.details.delay.ToTimedelta().total_seconds(), 0.01))
