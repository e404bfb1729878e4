"""One LISTEN connection per server process, turning Postgres NOTIFY into asyncio wake-ups.

Subscribers register their lease owner name and task keys, and get an asyncio.Event. A
notification "o:<owner>" (a run it held was settled) wakes that subscriber only. One
"k:<key>" (a run became deliverable) wakes one subscriber of the key, round-robin, rather than
all of them: waking every subscriber for every run made each one query for work that only one
could take. A subscriber that fills its prefetch passes the baton to the next (`wake_one`).
If the connection drops, every subscriber is woken and the listener reconnects with backoff.
Idle subscribers do not poll: the delivery service's one timer per process wakes them for
runs that became due without a notification (a scheduled time reached, a lease lapsed), so a
lost notification delays a delivery, never loses it.

State changes (channel `taskrun_state`, the ids of the runs that entered a state) go to the
watchers of those runs (WatchTaskRuns): each `StateWatch` collects the ids changed since it
last looked and is woken. They are heard on a second connection, open only while this process
has a watcher: every write sends such a notification, and hearing them all cost each server
process about 13% of its sequential creates and state changes when nobody was watching. Once
that connection listens (and after every reconnect), every watcher is told to look at
everything again (`resync`): notifications sent before then are not heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

import psycopg
from sqlalchemy import make_url

logger = logging.getLogger(__name__)

CHANNEL = "taskrun_scheduled"
STATE_CHANNEL = "taskrun_state"
STATE_LISTEN_SECONDS = 10.0
"""How long a new watcher waits for the state connection to listen before giving up."""


class NotListening(Exception):
    """The state-change connection could not be opened: the database is unreachable."""


class StateWatch:
    """A watcher of state changes: of these runs (ids as text), or of every run (None)."""

    def __init__(self, ids: frozenset[str] | None) -> None:
        self.ids = ids
        self.changed: set[str] = set()
        self.resync = False
        self.event = asyncio.Event()

    def take(self) -> tuple[set[str], bool]:
        """The ids changed since the last call, and whether to look at everything again."""
        changed, resync = self.changed, self.resync
        self.changed, self.resync = set(), False
        self.event.clear()
        return changed, resync


class Wakeup:
    """A subscriber's registration: its owner name, its keys, and the event the listener sets."""

    def __init__(self, owner: str, keys: Iterable[str]) -> None:
        self.owner = owner
        self.keys = frozenset(keys)
        self.event = asyncio.Event()
        self.has_room = True
        """Whether its prefetch had room after its last claim: only such subscribers are worth
        waking for a new run."""
        self.waiting = False
        """Whether it is asleep waiting for its event (not claiming, nor stuck writing to a
        stream its client does not read)."""


class NotificationListener:
    def __init__(self, database_url: str) -> None:
        self._url = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._by_owner: dict[str, Wakeup] = {}
        self._by_key: dict[str, deque[Wakeup]] = defaultdict(deque)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._watches: dict[str, set[StateWatch]] = defaultdict(set)
        self._watching_all: set[StateWatch] = set()
        self._states_task: asyncio.Task[None] | None = None
        self._states_heard = asyncio.Event()

    async def watch(self, ids: Iterable[str] | None) -> StateWatch:
        """Start collecting the state changes of these runs (of every run, for None); returns
        once they are heard, so that what the caller reads next is followed by every later
        change. NotListening if the database cannot be reached."""
        watch = StateWatch(frozenset(ids) if ids is not None else None)
        if watch.ids is None:
            self._watching_all.add(watch)
        for run_id in watch.ids or ():
            self._watches[run_id].add(watch)
        if self._states_task is None:
            self._states_task = asyncio.create_task(
                self._listen_for_states(), name="taskrun-state-listener"
            )
        try:
            await asyncio.wait_for(self._states_heard.wait(), STATE_LISTEN_SECONDS)
        except TimeoutError:
            self.unwatch(watch)
            raise NotListening("cannot listen for state changes") from None
        return watch

    def unwatch(self, watch: StateWatch) -> None:
        """Stop collecting for this watch; the last one closes the state connection."""
        self._watching_all.discard(watch)
        for run_id in watch.ids or ():
            watchers = self._watches.get(run_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[run_id]
        if not self._watches and not self._watching_all and self._states_task is not None:
            self._states_task.cancel()
            self._states_task = None
            self._states_heard.clear()

    @property
    def hears_states(self) -> bool:
        """Whether the state-change connection is open and listening."""
        return self._states_heard.is_set()

    def _dispatch_states(self, payload: str) -> None:
        for run_id in payload.split(","):
            for watch in self._watches.get(run_id, ()):
                watch.changed.add(run_id)
                watch.event.set()
            for watch in self._watching_all:
                watch.changed.add(run_id)
                watch.event.set()

    def _resync_watches(self) -> None:
        for watch in {*self._watching_all, *(w for ws in self._watches.values() for w in ws)}:
            watch.resync = True
            watch.event.set()

    def register(self, owner: str, keys: Iterable[str]) -> Wakeup:
        wakeup = Wakeup(owner, keys)
        self._by_owner[owner] = wakeup
        for key in wakeup.keys:
            self._by_key[key].append(wakeup)
        return wakeup

    def unregister(self, wakeup: Wakeup) -> None:
        self._by_owner.pop(wakeup.owner, None)
        for key in wakeup.keys:
            queue = self._by_key[key]
            with contextlib.suppress(ValueError):
                queue.remove(wakeup)
            if not queue:
                del self._by_key[key]

    def wake_one(self, keys: Iterable[str], but: Wakeup | None = None) -> None:
        """Wake the next subscriber of any of these keys, round-robin: one with room in its
        prefetch, not already woken, and not `but`; one asleep waiting first, else one that is
        busy claiming (so that it claims once more instead of missing the run)."""
        for key in keys:
            queue = self._by_key.get(key)
            if not queue:
                continue
            fallback: Wakeup | None = None
            for _ in range(len(queue)):
                queue.rotate(-1)
                candidate = queue[-1]
                if candidate is but or not candidate.has_room or candidate.event.is_set():
                    continue
                if candidate.waiting:
                    candidate.event.set()
                    return
                fallback = fallback or candidate
            if fallback is not None:
                fallback.event.set()
                return

    def keys_with_room(self) -> list[str]:
        """The keys some subscriber in this process has room for: what the timer looks up."""
        return [key for key, queue in self._by_key.items() if any(w.has_room for w in queue)]

    def wake_full(self) -> None:
        """Wake every waiting subscriber without room, so that it counts its deliveries again:
        those may have lapsed and gone to others without a notification reaching it."""
        for wakeup in self._by_owner.values():
            if wakeup.waiting and not wakeup.has_room:
                wakeup.event.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="taskrun-notification-listener")

    async def stop(self) -> None:
        for task in (self._task, self._states_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _dispatch(self, payload: str) -> None:
        kind, _, name = payload.partition(":")
        if kind == "o":
            owner = self._by_owner.get(name)
            # Only a subscriber without room waits for its settlements; one with room would
            # only claim again and find what it would have been woken for anyway.
            if owner is not None and not owner.has_room:
                owner.event.set()
        elif kind == "k":
            self.wake_one([name])

    def wake_all(self) -> None:
        """Wake every subscriber and watcher, e.g. to make it notice a shutdown."""
        for wakeup in self._by_owner.values():
            wakeup.event.set()
        self._resync_watches()

    async def _run(self) -> None:
        await self._listen(CHANNEL, self.connected, self.wake_all, self._dispatch)

    async def _listen_for_states(self) -> None:
        """The state-change connection, while some watcher needs it (cancelled by `unwatch`)."""
        await self._listen(
            STATE_CHANNEL, self._states_heard, self._resync_watches, self._dispatch_states
        )

    async def _listen(
        self,
        channel: str,
        listening: asyncio.Event,
        catch_up: Callable[[], None],
        dispatch: Callable[[str], None],
    ) -> None:
        """LISTEN on `channel` and hand each payload to `dispatch`, for ever: `listening` says
        when it is, and `catch_up` runs once it is and when the connection is lost (what was
        notified meanwhile is not heard), before reconnecting with backoff."""
        backoff = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {channel}")
                    listening.set()
                    backoff = 0.1
                    catch_up()
                    async for notify in conn.notifies():
                        dispatch(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away
                listening.clear()
                catch_up()
                logger.warning("listener on %s lost its connection: %s", channel, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
