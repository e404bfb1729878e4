"""Keeps gRPC health in step with the database: NOT_SERVING while it cannot be reached.

Load balancers and orchestrators probe health; a replica that has lost its database should be
taken out of rotation until it has it back, without being restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.liveness import database_reachable

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DatabaseHealthReporter:
    def __init__(
        self,
        health: health_aio.HealthServicer,
        engine: AsyncEngine,
        service_names: Sequence[str],
        interval: float,
    ) -> None:
        self._health = health
        self._engine = engine
        self._names = ("", *service_names)
        self._interval = interval
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def set_all(self, serving: bool) -> None:
        if serving == self._serving:
            return
        if self._serving is not None:
            if serving:
                logger.warning("the database is reachable again: SERVING")
            else:
                logger.warning("the database is unreachable: health is NOT_SERVING")
        self._serving = serving
        for name in self._names:
            await self._health.set(name, SERVING if serving else NOT_SERVING)

    def start(self) -> None:
        async def watch() -> None:
            while True:
                await asyncio.sleep(self._interval)
                reachable = await database_reachable(self._engine, limit_seconds=self._interval)
                await self.set_all(reachable)

        self._task = asyncio.create_task(watch(), name="database-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
