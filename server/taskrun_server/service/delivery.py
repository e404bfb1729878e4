"""SubscribeScheduledTasks: lease due background runs to a subscriber, as many as it prefetches.

A subscriber claims what it may, yields it, and otherwise sleeps until it is woken: by a NOTIFY
naming one of its keys (a run became deliverable) or its own name (a run it held was settled),
or by the process's one delivery timer. Idle subscribers do not poll: the timer makes one
query per tick for every key some subscriber of this process has room for, and wakes one
subscriber per key that has a due run. So five hundred idle subscribers cost what one does.

A subscriber that let a delivery's lease lapse without settling or renewing it is not reading
its stream (or is stuck): it claims nothing more until that run has gone to another
subscriber or been settled, so a hung client cannot hold runs away from healthy ones beyond
one lease. What a stream holds in memory is bounded by its prefetch.

When the stream ends for any reason, the subscriber's unsettled deliveries are released at once
so that other subscribers get those runs without waiting for the leases to lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.database.notifications import NotificationListener, Wakeup
from taskrun_server.domain.queues import Subscriber
from taskrun_server.repository import delivery as delivery_repo
from taskrun_server.repository.delivery import Delivery
from taskrun_server.service.clock import utcnow

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class DeliverySettings:
    lease: timedelta = timedelta(seconds=30)
    poll_interval: timedelta = timedelta(seconds=1)
    """The shared timer's period: the longest a due run waits when no notification comes."""


def _low_water_mark(prefetch: int) -> int:
    """A subscriber that holds leases claims again once this much of its prefetch is free."""
    return max(1, prefetch // 2)


@dataclass(slots=True)
class _Subscription:
    owner: str
    keys: Sequence[str]
    prefetch: int
    wakeup: Wakeup
    connected_at: datetime
    may_hold_leases: bool = False  # set once it has tried to claim: there may be some to give back


@dataclass(slots=True)
class _Claim:
    """One claim's outcome: the deliveries, whether the subscriber has room for more, and
    whether it filled its room (claim again at once)."""

    deliveries: list[Delivery] = field(default_factory=list)
    has_room: bool = False
    filled: bool = False


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
        self._timer: asyncio.Task[None] | None = None
        self._subscriptions: dict[str, _Subscription] = {}

    def subscribers(self) -> list[Subscriber]:
        """The streams open on this process now, oldest first."""
        return [
            Subscriber(
                owner=s.owner,
                task_keys=tuple(s.keys),
                prefetch=s.prefetch,
                connected_at=s.connected_at,
                has_room=s.wakeup.has_room,
            )
            for s in self._subscriptions.values()
        ]

    @property
    def lease(self) -> timedelta:
        return self._settings.lease

    def start(self) -> None:
        """Start the process's delivery timer."""
        self._timer = asyncio.create_task(self._tick_forever(), name="taskrun-delivery-timer")

    def shut_down(self) -> None:
        """End every subscription with ShuttingDown, and refuse new ones."""
        self._stopping.set()
        self._listener.wake_all()
        if self._timer is not None:
            self._timer.cancel()

    async def subscribe(
        self, keys: Sequence[str], client_id: str, prefetch: int
    ) -> AsyncIterator[Delivery]:
        if self._stopping.is_set():
            raise ShuttingDown
        owner = f"{client_id or 'anonymous'}/{uuid.uuid4().hex[:12]}"
        wakeup = self._listener.register(owner, keys)
        logger.info("subscriber %s on %d key(s), prefetch %d", owner, len(keys), prefetch)
        subscription = _Subscription(owner, keys, prefetch, wakeup, utcnow())
        self._subscriptions[owner] = subscription
        try:
            while not self._stopping.is_set():
                wakeup.event.clear()
                claim = await self._claim(subscription)
                wakeup.has_room = claim.has_room
                if claim.filled:
                    # It took all the room it had: there may be more, let a peer look.
                    self._listener.wake_one(keys, but=wakeup)
                for delivery in claim.deliveries:
                    yield delivery
                if not claim.filled:
                    # Looked up after the deliveries went out: off their critical path. Busy or
                    # stalled, it has no room for a run that becomes due, so nothing to time.
                    due_in = await self._seconds_until_due(keys) if claim.has_room else None
                    await self._sleep(wakeup, due_in)
            raise ShuttingDown
        finally:
            self._subscriptions.pop(owner, None)
            self._listener.unregister(wakeup)
            # A subscriber that never reached a claim has no lease to give back. Skipping the query
            # also keeps a worker that resubscribes while Postgres is down from logging a
            # release failure on every attempt.
            if subscription.may_hold_leases:
                await self._release(owner)

    async def _sleep(self, wakeup: Wakeup, due_in: float | None) -> None:
        """Wait to be woken. Only a run due sooner than the next tick gets a timer of its own."""
        poll = self._settings.poll_interval.total_seconds()
        timeout = max(due_in, 0.005) if due_in is not None and due_in < poll else None
        wakeup.waiting = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.event.wait(), timeout)
        finally:
            wakeup.waiting = False

    async def backlog(self) -> delivery_repo.Backlog:
        """How many background runs wait in SCHEDULED, free or leased (for metrics)."""
        async with self._autocommit.connect() as conn:
            return await delivery_repo.backlog(conn)

    async def _claim(self, subscription: _Subscription) -> _Claim:
        """Claim what the subscriber has room for, unless it is stalled or busy."""
        owner, keys, prefetch = subscription.owner, subscription.keys, subscription.prefetch
        async with self._autocommit.connect() as conn:
            held = await delivery_repo.held(conn, owner)
            if held.lapsed:
                return _Claim()  # stalled: it is not settling what it was sent
            room = prefetch - held.live
            if room <= 0 or (held.live and room < _low_water_mark(prefetch)):
                # Busy: wait for settlements ("o:" notifications) to free enough room that
                # one claim serves several deliveries.
                return _Claim()
            # Set before the claim: if the stream is cancelled while the claim's UPDATE is in
            # flight, it may have committed, and those leases must still be given back.
            subscription.may_hold_leases = True
            deliveries = await delivery_repo.claim(
                conn, owner=owner, keys=keys, limit=room, lease=self._settings.lease
            )
        if len(deliveries) == room:
            return _Claim(deliveries, has_room=False, filled=True)
        return _Claim(deliveries, has_room=True)

    async def _seconds_until_due(self, keys: Sequence[str]) -> float | None:
        async with self._autocommit.connect() as conn:
            return await delivery_repo.seconds_until_due(conn, keys)

    async def _tick_forever(self) -> None:
        period = self._settings.poll_interval.total_seconds()
        while not self._stopping.is_set():
            await asyncio.sleep(period)
            try:
                await self.tick()
            except Exception as error:  # the database is away: the next tick tries again
                logger.debug("delivery timer: %s", error)

    async def tick(self) -> None:
        """Wake one subscriber with room for each key that has a due run nobody was told of,
        and every subscriber without room, to recount what it holds."""
        self._listener.wake_full()
        keys = self._listener.keys_with_room()
        if not keys:
            return
        async with self._autocommit.connect() as conn:
            due = await delivery_repo.due_keys(conn, keys)
        for key in due:
            self._listener.wake_one([key])

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
