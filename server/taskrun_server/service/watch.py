"""WatchTaskRuns: push each state change of the runs a client watches, as it commits.

Postgres notifies the ids of the runs that entered a state (migration 0006); this process's
listener hands them to the watches that asked for them. A watch then reads those runs (one
query for however many changed) and sends each whose state is not the one it sent last.

No change is missed: the runs are read after the watch is registered, so a change committed
after that read is notified to it; a notification lost with the listener's connection makes
every watch read all its runs again, and id watches also do so every `resync_seconds` in case.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.database.notifications import NotificationListener, NotListening, StateWatch
from taskrun_server.domain.errors import NotFound, Unavailable
from taskrun_server.domain.filters import TaskRunQuery
from taskrun_server.domain.task_runs import StoredTaskRun
from taskrun_server.repository import task_runs as runs_repo
from taskrun_server.service.delivery import ShuttingDown

MAX_WATCHED_RUNS = 1000
REMEMBERED_RUNS = 10_000
"""A filter watch remembers the last state it sent for this many runs (the most recent)."""


@dataclass(slots=True, frozen=True)
class WatchSettings:
    resync_seconds: float = 5.0
    """How often an id watch reads its runs again without a notification, in case one was lost."""
    pace_seconds: float = 0.01
    """The shortest time between two reads of one watch. A change after a quiet spell is read
    at once; under a stream of changes, one read takes all that came meanwhile. Without it, a
    watch of every run cost each sequential create a read of its own: a third of their rate."""


class WatchService:
    def __init__(
        self,
        engine: AsyncEngine,
        listener: NotificationListener,
        settings: WatchSettings | None = None,
    ) -> None:
        self._reads = autocommit_view(engine)  # the primary: it is what notified
        self._listener = listener
        self._settings = settings or WatchSettings()
        self._stopping = False

    def shut_down(self) -> None:
        """End every watch with ShuttingDown (the listener wakes them), and refuse new ones."""
        self._stopping = True

    async def watch_runs(
        self,
        task_run_ids: Sequence[uuid.UUID],
        *,
        until_terminal: bool,
        bulky: bool,
        pace: float | None = None,
    ) -> AsyncIterator[StoredTaskRun]:
        """Each run as it is, then again after each change; NotFound for a run that does not
        exist or is deleted meanwhile. `pace`: the shortest time between reads (the setting's
        by default)."""
        ids = list(dict.fromkeys(task_run_ids))
        watch = await self._start({str(i) for i in ids})
        pacer = _Pacer(self._settings.pace_seconds if pace is None else pace)
        try:
            runs = await self._read(ids, bulky=bulky)
            for run_id in ids:
                if run_id not in runs:
                    raise NotFound(f"task run {run_id} does not exist", "task_run_ids")
            sent = {run_id: runs[run_id].state_id for run_id in ids}
            for run_id in ids:
                yield runs[run_id]
            while not (until_terminal and _all_terminal(runs.values())):
                changed = await self._next(watch, ids, self._settings.resync_seconds, pacer)
                fresh = await self._read(changed, bulky=bulky)
                for run_id in changed:
                    run = fresh.get(run_id)
                    if run is None:
                        raise NotFound(f"task run {run_id} was deleted", "task_run_ids")
                    runs[run_id] = run
                    if run.state_id != sent[run_id]:
                        sent[run_id] = run.state_id
                        yield run
        finally:
            self._listener.unwatch(watch)

    async def watch_matching(
        self, query: TaskRunQuery, *, bulky: bool, pace: float | None = None
    ) -> AsyncIterator[StoredTaskRun]:
        """Every run that matches `query` when its state changes, from now on."""
        watch = await self._start(None)
        pacer = _Pacer(self._settings.pace_seconds if pace is None else pace)
        sent: OrderedDict[uuid.UUID, uuid.UUID | None] = OrderedDict()
        try:
            while True:
                changed = await self._next(watch, [], None, pacer)
                async with self._reads.connect() as conn:
                    found = await runs_repo.read_task_runs_among(conn, changed, query, bulky=bulky)
                for run in sorted(found.values(), key=lambda r: r.state_timestamp or r.updated):
                    if sent.get(run.id, ...) == run.state_id:
                        continue
                    sent[run.id] = run.state_id
                    sent.move_to_end(run.id)
                    if len(sent) > REMEMBERED_RUNS:
                        sent.popitem(last=False)
                    yield run
        finally:
            self._listener.unwatch(watch)

    async def _start(self, ids: set[str] | None) -> StateWatch:
        if self._stopping:
            raise ShuttingDown
        try:
            return await self._listener.watch(ids)
        except NotListening as error:
            raise Unavailable(str(error)) from error

    async def _next(
        self,
        watch: StateWatch,
        everything: list[uuid.UUID],
        resync_after: float | None,
        pacer: _Pacer,
    ) -> list[uuid.UUID]:
        """The ids to read again: those notified, or all watched after a lost connection or
        `resync_after` seconds of quiet; never sooner than the pace allows."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.event.wait(), resync_after)
            woken = True
        await pacer.wait()
        if self._stopping:
            raise ShuttingDown
        changed, resync = watch.take()
        if resync or not woken:
            return everything
        return [uuid.UUID(run_id) for run_id in changed]

    async def _read(
        self, ids: Sequence[uuid.UUID], *, bulky: bool
    ) -> dict[uuid.UUID, StoredTaskRun]:
        if not ids:
            return {}
        async with self._reads.connect() as conn:
            return await runs_repo.read_task_runs_among(conn, ids, bulky=bulky)


class _Pacer:
    """Keeps one watch's reads at least `seconds` apart."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._last = -math.inf

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        early = self._last + self._seconds - loop.time()
        if early > 0:
            await asyncio.sleep(early)
        self._last = loop.time()


def _all_terminal(runs: Iterable[StoredTaskRun]) -> bool:
    return all(run.state_type is not None and run.state_type.is_terminal for run in runs)
