"""The Coalescer: concurrent calls share batches, and every caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from taskrun_server.service.coalescing import Coalescer


async def turns() -> None:
    """Let every ready task run until it waits (a submit, then the batch it starts)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Recorder:
    """A batch function that doubles numbers, refuses negative ones, and records its batches.
    `gate` holds a batch until the test opens it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_batches_larger_than: int | None = None

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        limit = self.fail_batches_larger_than
        if limit is not None and len(items) > limit:
            raise RuntimeError("the batch as a whole failed")
        return [ValueError(f"{i} is negative") if i < 0 else 2 * i for i in items]


async def test_a_lone_call_is_answered_by_a_batch_of_one() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_batch=10, max_in_flight=1)
    assert await coalescer.submit(21) == 42
    assert recorder.batches == [[21]]


async def test_calls_arriving_while_a_batch_runs_go_together_in_the_next() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_batch=10, max_in_flight=1)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.submit(1))
    await turns()
    waiting = [asyncio.create_task(coalescer.submit(i)) for i in (2, 3, 4)]
    await turns()
    recorder.gate.set()
    assert await first == 2
    assert await asyncio.gather(*waiting) == [4, 6, 8]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_no_batch_is_larger_than_the_maximum() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_batch=3, max_in_flight=1)
    recorder.gate.clear()
    calls = [asyncio.create_task(coalescer.submit(i)) for i in range(8)]
    await turns()
    recorder.gate.set()
    assert await asyncio.gather(*calls) == [2 * i for i in range(8)]
    assert [len(b) for b in recorder.batches] == [1, 3, 3, 1]


async def test_an_item_that_fails_fails_only_its_own_caller() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_batch=10, max_in_flight=1)
    recorder.gate.clear()
    calls = [asyncio.create_task(coalescer.submit(i)) for i in (1, -1, 3)]
    await turns()
    recorder.gate.set()
    answers = await asyncio.gather(*calls, return_exceptions=True)
    assert answers[0] == 2 and answers[2] == 6
    assert isinstance(answers[1], ValueError)


async def test_a_batch_that_fails_as_a_whole_is_retried_one_item_at_a_time() -> None:
    recorder = Recorder()
    recorder.fail_batches_larger_than = 1
    coalescer = Coalescer(recorder, max_batch=10, max_in_flight=1)
    recorder.gate.clear()
    first = asyncio.create_task(coalescer.submit(1))
    await turns()
    waiting = [asyncio.create_task(coalescer.submit(i)) for i in (2, -3)]
    await turns()
    recorder.gate.set()
    assert await first == 2
    answers = await asyncio.gather(*waiting, return_exceptions=True)
    assert answers[0] == 4 and isinstance(answers[1], ValueError)
    assert recorder.batches == [[1], [2, -3], [2], [-3]]


async def test_batches_run_side_by_side_up_to_the_limit() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_batch=10, max_in_flight=2)
    recorder.gate.clear()
    calls = [asyncio.create_task(coalescer.submit(i)) for i in range(5)]
    await turns()
    assert recorder.batches == [[0], [1]]  # two in flight; the rest wait for one to finish
    recorder.gate.set()
    assert await asyncio.gather(*calls) == [0, 2, 4, 6, 8]
    assert recorder.batches[2:] == [[2, 3, 4]]


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), max_batch=0, max_in_flight=1)
