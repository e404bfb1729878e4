"""Send the log records a task function emits to the server's LogService, in batches.

A logging handler on the root logger keeps records made inside a task function (its thread or
its asyncio task knows the run, through a context variable) and ignores all others. Records
wait in a bounded buffer (the oldest are dropped, and counted, when the server cannot keep up)
and go out every half second, or sooner when a batch fills.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

from taskrun.v1 import resources_pb2
from taskrun_client.async_client import AsyncTaskRunClient
from taskrun_client.errors import TaskRunError
from taskrun_client.task_execution import current_task_run_id

logger = logging.getLogger(__name__)

BATCH = 500
BUFFER = 20_000
FLUSH_SECONDS = 0.5


class TaskLogHandler(logging.Handler):
    """Keeps the records of task functions; thread-safe (deque appends are atomic)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: collections.deque[resources_pb2.LogCreate] = collections.deque(maxlen=BUFFER)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        run_id = current_task_run_id()
        if run_id is None:
            return
        if len(self.records) == self.records.maxlen:
            self.dropped += 1
        log = resources_pb2.LogCreate(
            name=record.name, level=record.levelno, message=self.format(record), task_run_id=run_id
        )
        log.timestamp.FromNanoseconds(int(record.created * 1e9))
        self.records.append(log)


class LogShipper:
    """Installs the handler while it runs, and sends what it keeps."""

    def __init__(self, client: AsyncTaskRunClient) -> None:
        self._client = client
        self.handler = TaskLogHandler()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def start(self) -> None:
        logging.getLogger().addHandler(self.handler)
        self._task = asyncio.create_task(self._ship_forever(), name="taskrun-log-shipper")

    async def stop(self) -> None:
        """Send what is left, then remove the handler."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        logging.getLogger().removeHandler(self.handler)

    async def _ship_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        records = self.handler.records
        while records:
            batch = [records.popleft() for _ in range(min(BATCH, len(records)))]
            try:
                self.sent += await self._client.create_logs(batch)
            except TaskRunError as error:  # logs are best effort: never fail a task over them
                logger.warning("could not send %d task log record(s): %s", len(batch), error)
                return
