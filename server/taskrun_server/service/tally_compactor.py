"""The tally compactor: a loop in every server process that folds the tally's pending deltas
into it (`repository/tally.py`), so that readers sum a few thousand keys and not every change
since the start. Replicas take turns: one compaction at a time, the others skip theirs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.repository import tally as tally_repo

logger = logging.getLogger(__name__)


class TallyCompactor:
    def __init__(self, engine: AsyncEngine, interval_seconds: float) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="taskrun-tally-compactor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def compact(self) -> bool:
        """Fold the pending deltas now; False when another replica was doing it."""
        async with self._engine.begin() as conn:
            return await tally_repo.compact(conn)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.compact()
            except Exception as error:  # the database is away: try again next period
                logger.debug("tally compactor: %s", error)
