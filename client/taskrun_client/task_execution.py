"""Running one task function, and turning what it did into the state to propose.

Sync functions run on a thread of their own and async ones on the event loop, so neither
blocks the worker's stream, heartbeats or other tasks. A run can be stopped from outside: an
async function is cancelled; a sync one cannot be interrupted in Python, so its thread is
abandoned (a daemon thread; it finishes on its own) and its result ignored. The outcome is
always a state to propose, never an exception: a result JSON cannot hold fails the run with a
message naming its type.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Literal

from google.protobuf import json_format, struct_pb2

from taskrun.v1 import state_pb2, task_run_pb2

TaskFunction = Callable[..., Any]
StopReason = Literal["cancelled", "lost"]

MAX_TRACEBACK_CHARS = 32_000

_current_run: contextvars.ContextVar[task_run_pb2.TaskRun] = contextvars.ContextVar(
    "taskrun_current_run"
)


def current_task_run() -> task_run_pb2.TaskRun:
    """The task run whose function is running in this context (thread or task).

    Raises LookupError outside a task function.
    """
    return _current_run.get()


def current_task_run_id() -> str | None:
    """The id of the running task run, or None outside a task function."""
    run = _current_run.get(None)
    return run.id if run is not None else None


class Execution:
    """One call of a task function for one run, which may be stopped or time out."""

    def __init__(
        self,
        function: TaskFunction,
        run: task_run_pb2.TaskRun,
        parameters: Mapping[str, Any],
        timeout: float | None,
    ) -> None:
        self._function = function
        self._run = run
        self._parameters = dict(parameters)
        self._timeout = timeout
        self._stopped = asyncio.Event()
        self.stop_reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        """Stop the function: "cancelled" proposes CANCELLED, "lost" proposes nothing."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stopped.set()

    async def outcome(self) -> state_pb2.StateCreate | None:
        """Run the function to its end, its stop or its timeout. None: propose nothing."""
        body = asyncio.ensure_future(self._invoke())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            done, _ = await asyncio.wait(
                {body, stopped}, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        if body in done:
            return completed_or_failed(body)
        body.cancel()
        with contextlib.suppress(BaseException):
            await body
        if self.stop_reason == "lost":
            return None
        if self.stop_reason == "cancelled":
            return state_pb2.StateCreate(
                type=state_pb2.STATE_TYPE_CANCELLED, message="Cancelled while running."
            )
        return state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_FAILED,
            name="TimedOut",
            message=f"The attempt ran longer than its execution timeout of {self._timeout:g}s.",
        )

    async def _invoke(self) -> Any:
        context = contextvars.copy_context()
        context.run(_current_run.set, self._run)
        if inspect.iscoroutinefunction(self._function):
            coroutine = self._function(**self._parameters)
            return await asyncio.create_task(coroutine, context=context)
        result = await _in_thread(context, self._function, self._parameters, self._run.id)
        if inspect.isawaitable(result):
            return await result
        return result


async def _in_thread(
    context: contextvars.Context,
    function: TaskFunction,
    parameters: dict[str, Any],
    name: str,
) -> Any:
    """Call `function` on a daemon thread of its own; awaiting the answer can be cancelled,
    which abandons the thread rather than waiting for it."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if answer.done():  # abandoned: nobody wants it any more
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value)

    def target() -> None:
        try:
            value, error = context.run(function, **parameters), None
        except BaseException as caught:
            value, error = None, caught
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker has stopped
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, name=f"taskrun-task-{name}", daemon=True).start()
    return await answer


def completed_or_failed(body: asyncio.Future[Any]) -> state_pb2.StateCreate:
    """COMPLETED with the result as data, or FAILED with the exception's type, message and
    traceback as data."""
    if body.cancelled():  # the function cancelled itself (or a library did it for it)
        return state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_FAILED, message="The task was cancelled from within."
        )
    error = body.exception()
    if error is not None:
        return failed(error)
    try:
        data = result_to_value(body.result())
    except TypeError as unstorable:
        return state_pb2.StateCreate(type=state_pb2.STATE_TYPE_FAILED, message=str(unstorable))
    completed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    if data is not None:
        completed.data.CopyFrom(data)
    return completed


def result_to_value(result: Any) -> struct_pb2.Value | None:
    """A function's result as a protobuf Value; TypeError when JSON cannot hold it."""
    if result is None:
        return None
    try:
        plain = json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"The task returned a value of type {type(result).__qualname__} that cannot be "
            f"stored as JSON: {error}"
        ) from None
    return json_format.ParseDict(plain, struct_pb2.Value())


def failed(error: BaseException) -> state_pb2.StateCreate:
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    trace = "".join(traceback.format_exception(error))[-MAX_TRACEBACK_CHARS:]
    state = state_pb2.StateCreate(
        type=state_pb2.STATE_TYPE_FAILED, message=f"{kind.__qualname__}: {error}"
    )
    state.data.struct_value.update({"type": name, "message": str(error), "traceback": trace})
    return state
