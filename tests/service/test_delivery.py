"""DeliveryService on its own: what a subscription does when the database is out of reach."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from devtools.server_processes import free_port
from taskrun_server.database.engine import create_engine
from taskrun_server.database.notifications import NotificationListener
from taskrun_server.service.delivery import DeliveryService
from taskrun_server.settings import Settings


async def test_a_subscriber_that_never_reached_a_claim_has_nothing_to_release(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker resubscribing while Postgres is down must not log a failed release each time:
    it never claimed, so there is nothing to give back and no query to try."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/unreachable"  # nobody listens
    engine = create_engine(url, Settings(database_url=url))
    delivery = DeliveryService(engine, NotificationListener(url))
    try:
        with caplog.at_level(logging.INFO, logger="taskrun_server.service.delivery"):
            for _ in range(3):
                with pytest.raises(OperationalError):
                    async for _ in delivery.subscribe(["k"], "worker", prefetch=1):
                        pass
    finally:
        await engine.dispose()
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if m.startswith("subscriber worker/")]) == 3
    assert not [m for m in messages if "release" in m]
