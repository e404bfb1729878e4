"""The reaper: a loop in every server process that takes back runs whose worker went quiet or
whose attempt ran too long. Replicas never do the same work twice: each run is locked with
SKIP LOCKED and re-checked under the lock (`OrchestrationService.reap_lapsed`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskrun_server.service.orchestration import OrchestrationService

logger = logging.getLogger(__name__)

BATCH = 100


class Reaper:
    def __init__(self, orchestration: OrchestrationService, interval_seconds: float) -> None:
        self._orchestration = orchestration
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="taskrun-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                moved = await self._orchestration.reap_lapsed(BATCH)
            except Exception as error:  # the database is away: try again next period
                logger.debug("reaper: %s", error)
                moved = 0
            if moved < BATCH:  # a full batch means there may be more: go again at once
                await asyncio.sleep(self._interval)
