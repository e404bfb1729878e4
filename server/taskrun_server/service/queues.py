"""The queue overview operators read: per task key, per lease holder, and this process's
subscribers (streams are held in memory by the process they are connected to)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.domain.queues import QueueOverview
from taskrun_server.repository import queues as queues_repo
from taskrun_server.service.delivery import DeliveryService

RECENT = timedelta(minutes=5)
"""The window the drain rate is counted over."""


class QueueService:
    def __init__(self, engine: AsyncEngine, delivery: DeliveryService) -> None:
        self._reads = autocommit_view(engine)
        self._delivery = delivery

    async def overview(self) -> QueueOverview:
        async with self._reads.connect() as conn:
            keys = await queues_repo.queues_by_task_key(conn, recent=RECENT)
            holders = await queues_repo.lease_holders(conn)
        return QueueOverview(keys=keys, holders=holders, subscribers=self._delivery.subscribers())
