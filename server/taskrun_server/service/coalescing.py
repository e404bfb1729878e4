"""Coalescing: concurrent single calls answered by one batch, each caller with its own answer.

The write paths cost the same fixed price per transaction whatever it holds: a round trip per
statement, a commit and its WAL flush, the driver's and SQLAlchemy's per-statement overhead.
A `Coalescer` lets at most `max_in_flight` batches run at once; calls that arrive while they
are all busy wait together and go in the next batch. A lone call is never delayed (it starts a
batch of one at once); under load, batches grow by themselves to what the database can absorb,
which is how Hatchet's and Postgres's own group commit trade nothing at low load for
throughput at high load.

The batch function answers every item: a result, or the exception that item alone raises.
If the batch itself fails (the transaction could not be run), each item is tried again alone,
so that one caller's bad luck is not another's error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

BatchFunction = Callable[[Sequence[In]], Awaitable[Sequence[Out | BaseException]]]


@dataclass(slots=True, frozen=True)
class CoalescingSettings:
    """How many calls share a transaction at most, and how many transactions run at once."""

    max_batch: int = 64
    max_in_flight: int = 1


@dataclass(slots=True)
class _Waiting(Generic[In, Out]):
    item: In
    answer: asyncio.Future[Out]


class Coalescer(Generic[In, Out]):
    """Runs `batch` over the items submitted concurrently; see the module's docstring."""

    def __init__(
        self, batch: BatchFunction[In, Out], *, max_batch: int, max_in_flight: int
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._batch = batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[_Waiting[In, Out]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: In) -> Out:
        """The item's answer, from whichever batch carries it."""
        answer: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(item, answer))
        self._start_batches()
        return await answer

    def _start_batches(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            taken = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            task = asyncio.create_task(self._run(taken))
            self._tasks.add(task)  # a strong reference until done: the loop keeps only weak ones
            task.add_done_callback(self._tasks.discard)

    async def _run(self, waiting: list[_Waiting[In, Out]]) -> None:
        try:
            live = [w for w in waiting if not w.answer.done()]  # callers gone: nothing to do
            if live:
                await self._answer(live)
        finally:
            self._in_flight -= 1
            self._start_batches()

    async def _answer(self, waiting: list[_Waiting[In, Out]]) -> None:
        try:
            results = await self._batch([w.item for w in waiting])
        except Exception as error:
            if len(waiting) == 1:
                _settle(waiting[0], error)
                return
            logger.debug("a batch of %d failed (%s); trying each alone", len(waiting), error)
            await asyncio.gather(*(self._answer([w]) for w in waiting))
            return
        except BaseException as error:  # cancelled while running: every caller learns it
            for w in waiting:
                _settle(w, error)
            raise
        for w, result in zip(waiting, results, strict=True):
            _settle(w, result)


def _settle(waiting: _Waiting[In, Out], result: Out | BaseException) -> None:
    if waiting.answer.done():
        return
    if isinstance(result, BaseException):
        waiting.answer.set_exception(result)
    else:
        waiting.answer.set_result(result)
