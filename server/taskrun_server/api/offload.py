"""Heavy protobuf work off the event loop, so that one big request cannot stall the others.

Turning a large JSON value (a state's data, a run's parameters) into Python and back walks
every node in Python: a megabyte of small values costs a few hundred milliseconds of CPU. On
the event loop that would hold up health probes and every small call for as long. On a worker
thread it still holds the GIL, but Python hands the GIL back every few milliseconds, so the
loop keeps answering. Small messages stay on the loop: a thread hop costs more than they do.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

OFFLOAD_BYTES = 64 * 1024
"""Requests larger than this encoded are parsed, and answered, on a worker thread."""


_HEAVY = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskrun-heavy")
"""One thread: heavy requests take turns on it, so the event loop only ever competes with one
other thread for the GIL (with four, health probes waited four times as long)."""


_large_request: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "taskrun_large_request", default=False
)


def mark_request_large() -> None:
    """Note, for the handler about to run in this call, that its request was large (decided
    once, from the payload's length, where it was received)."""
    _large_request.set(True)


def request_is_large() -> bool:
    """Whether this call's request was over OFFLOAD_BYTES: answer it off the loop too."""
    return _large_request.get()


async def off_the_loop_if(heavy: bool, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)`: on the heavy-work thread when `heavy`, here otherwise."""
    if not heavy:
        return work(*args)
    return await asyncio.get_running_loop().run_in_executor(_HEAVY, functools.partial(work, *args))


def carries_json(data: Any) -> bool:
    """Whether a stored value is a container: only those can be heavy to encode."""
    return isinstance(data, dict | list)
