"""SubscribeScheduledTasks: lease due background runs to a subscriber, as many as it prefetches.

The loop claims what it may, yields it, and otherwise sleeps until a NOTIFY names one of its
keys, the next run becomes due, or the fallback poll interval passes, whichever comes first.
When the stream ends for any reason, the subscriber's unsettled leases are released at once so
that other subscribers get those runs without waiting for the leases to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.database.notifications import NotificationListener
from taskrun_server.repository import delivery as delivery_repo
from taskrun_server.repository.delivery import Lease

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class DeliverySettings:
    lease: timedelta = timedelta(seconds=30)
    poll_interval: timedelta = timedelta(seconds=1)


def _low_water_mark(prefetch: int) -> int:
    """A subscriber that holds leases claims again once this much of its prefetch is free."""
    return max(1, prefetch // 2)


@dataclass(slots=True)
class _Subscription:
    owner: str
    keys: Sequence[str]
    prefetch: int
    may_hold_leases: bool = False  # set once it has tried to claim: there may be some to give back


class ShuttingDown(Exception):
    """The server is stopping; the subscriber should resubscribe (to another replica)."""


class DeliveryService:
    def __init__(
        self,
        engine: AsyncEngine,
        listener: NotificationListener,
        settings: DeliverySettings | None = None,
    ) -> None:
        self._autocommit = autocommit_view(engine)
        self._listener = listener
        self._settings = settings or DeliverySettings()
        self._stopping = asyncio.Event()

    def shut_down(self) -> None:
        """End every subscription with ShuttingDown, and refuse new ones."""
        self._stopping.set()
        self._listener.wake_all()

    async def subscribe(
        self, keys: Sequence[str], client_id: str, prefetch: int
    ) -> AsyncIterator[Lease]:
        if self._stopping.is_set():
            raise ShuttingDown
        owner = f"{client_id or 'anonymous'}/{uuid.uuid4().hex[:12]}"
        wakeup = self._listener.register(owner, keys)
        logger.info("subscriber %s on %d key(s), prefetch %d", owner, len(keys), prefetch)
        subscription = _Subscription(owner, keys, prefetch)
        try:
            while not self._stopping.is_set():
                wakeup.event.clear()
                leases, room_left, timeout = await self._claim(subscription)
                wakeup.has_room = room_left > 0
                if leases and timeout is None:
                    # It took all the room it had: there may be more, let a peer look.
                    self._listener.wake_one(keys, but=wakeup)
                for lease in leases:
                    yield lease
                if timeout is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.event.wait(), timeout)
            raise ShuttingDown
        finally:
            self._listener.unregister(wakeup)
            # A subscriber that never reached a claim has no lease to give back. Skipping the query
            # also keeps a worker that resubscribes while Postgres is down from logging a
            # release failure on every attempt.
            if subscription.may_hold_leases:
                await self._release(owner)

    async def backlog(self) -> delivery_repo.Backlog:
        """How many background runs wait in SCHEDULED, free or leased (for metrics)."""
        async with self._autocommit.connect() as conn:
            return await delivery_repo.backlog(conn)

    async def _claim(self, subscription: _Subscription) -> tuple[list[Lease], int, float | None]:
        """Claim what the subscriber has room for. Returns the leases, the room left, and how
        long to sleep after yielding them (None: claim again at once, it filled its room)."""
        owner, keys, prefetch = subscription.owner, subscription.keys, subscription.prefetch
        poll = self._settings.poll_interval.total_seconds()
        async with self._autocommit.connect() as conn:
            held = await delivery_repo.held(conn, owner)
            room = prefetch - held
            if room <= 0 or (held and room < _low_water_mark(prefetch)):
                # Busy: wait for settlements ("o:" notifications) to free enough room that
                # one claim serves several deliveries.
                return [], 0, poll
            # Set before the claim: if the stream is cancelled while the claim's UPDATE is in
            # flight, it may have committed, and those leases must still be given back.
            subscription.may_hold_leases = True
            leases = await delivery_repo.claim(
                conn, owner=owner, keys=keys, limit=room, lease=self._settings.lease
            )
            if len(leases) == room:
                return leases, 0, None
            due_in = await delivery_repo.seconds_until_due(conn, keys)
        room_left = room - len(leases)
        if due_in is None:
            return leases, room_left, poll
        return leases, room_left, min(poll, max(due_in, 0.005))

    async def _release(self, owner: str) -> None:
        """Give back unsettled leases; shielded so that a cancelled stream still does it."""

        async def release() -> None:
            async with self._autocommit.connect() as conn:
                released = await delivery_repo.release(conn, owner)
            if released:
                logger.info("subscriber %s left; %d lease(s) released", owner, released)

        try:
            await asyncio.shield(release())
        except Exception as error:  # the leases will expire on their own
            logger.warning("could not release the leases of %s: %s", owner, error)
