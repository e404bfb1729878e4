"""TaskRunClient: the AsyncTaskRunClient's calls, blocking, for programs without asyncio.

    from taskrun_client import TaskRunClient

    with TaskRunClient() as client:            # TASKRUN_TARGET / TASKRUN_TOKEN, or a config
        run = client.create_task_run("hello", "0").task_run
        client.set_task_run_state(run.id, "RUNNING")
        done = client.wait(run.id, timeout=60)

Each call runs the async client's on an event loop in a thread of the client's own, so the two
clients have one implementation: the same calls, arguments, answers and errors. Streams
(subscriptions, watches) become plain iterators.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from taskrun_client.async_client import AsyncTaskRunClient
from taskrun_client.config import ClientConfig

P = ParamSpec("P")
R = TypeVar("R")
Item = TypeVar("Item")


def _blocking(
    method: Callable[Concatenate[AsyncTaskRunClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[TaskRunClient, P], R]:
    """The async client's method, run to completion on the client's loop."""

    def call(self: TaskRunClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self._client, *args, **kwargs))

    return _documented(call, method)


def _blocking_stream(
    method: Callable[Concatenate[AsyncTaskRunClient, P], AsyncGenerator[Item, None]],
) -> Callable[Concatenate[TaskRunClient, P], Iterator[Item]]:
    """The async client's stream, as an iterator; closing it (or leaving a `for` loop early)
    cancels the call."""

    def call(self: TaskRunClient, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Item]:
        return self._iterate(method(self._client, *args, **kwargs))

    return _documented(call, method)


Function = TypeVar("Function", bound=Callable[..., Any])


def _documented(call: Function, method: Callable[..., Any]) -> Function:
    """The async method's name and docstring on its blocking twin (help(), IDEs)."""
    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class TaskRunClient:
    def __init__(self, config: ClientConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="taskrun-client", daemon=True
        )
        self._thread.start()
        self._client = self._run(_open(config or ClientConfig.from_env()))
        self.config = self._client.config

    def _run(self, work: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _iterate(self, stream: AsyncGenerator[Item, None]) -> Iterator[Item]:
        try:
            while True:
                try:
                    yield self._run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> TaskRunClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Task runs
    create_task_run = _blocking(AsyncTaskRunClient.create_task_run)
    batch_create_task_runs = _blocking(AsyncTaskRunClient.batch_create_task_runs)
    read_task_run = _blocking(AsyncTaskRunClient.read_task_run)
    read_task_runs = _blocking(AsyncTaskRunClient.read_task_runs)
    iter_task_runs = _blocking_stream(AsyncTaskRunClient.iter_task_runs)
    paginate_task_runs = _blocking(AsyncTaskRunClient.paginate_task_runs)
    count_task_runs = _blocking(AsyncTaskRunClient.count_task_runs)
    task_run_history = _blocking(AsyncTaskRunClient.task_run_history)
    update_task_run = _blocking(AsyncTaskRunClient.update_task_run)
    delete_task_run = _blocking(AsyncTaskRunClient.delete_task_run)
    read_task_run_state = _blocking(AsyncTaskRunClient.read_task_run_state)
    read_task_run_states = _blocking(AsyncTaskRunClient.read_task_run_states)
    delete_task_run_state = _blocking(AsyncTaskRunClient.delete_task_run_state)
    set_task_run_state = _blocking(AsyncTaskRunClient.set_task_run_state)
    batch_set_task_run_states = _blocking(AsyncTaskRunClient.batch_set_task_run_states)
    heartbeat_task_runs = _blocking(AsyncTaskRunClient.heartbeat_task_runs)
    subscribe_scheduled_tasks = _blocking_stream(AsyncTaskRunClient.subscribe_scheduled_tasks)
    watch_task_runs = _blocking_stream(AsyncTaskRunClient.watch_task_runs)
    wait = _blocking(AsyncTaskRunClient.wait)
    # Concurrency limits
    create_concurrency_limit = _blocking(AsyncTaskRunClient.create_concurrency_limit)
    read_concurrency_limit = _blocking(AsyncTaskRunClient.read_concurrency_limit)
    read_concurrency_limits = _blocking(AsyncTaskRunClient.read_concurrency_limits)
    reset_concurrency_limit = _blocking(AsyncTaskRunClient.reset_concurrency_limit)
    delete_concurrency_limit = _blocking(AsyncTaskRunClient.delete_concurrency_limit)
    # Flows, deployments, flow runs
    create_flow = _blocking(AsyncTaskRunClient.create_flow)
    read_flow = _blocking(AsyncTaskRunClient.read_flow)
    create_deployment = _blocking(AsyncTaskRunClient.create_deployment)
    read_deployment = _blocking(AsyncTaskRunClient.read_deployment)
    create_flow_run = _blocking(AsyncTaskRunClient.create_flow_run)
    read_flow_run = _blocking(AsyncTaskRunClient.read_flow_run)
    set_flow_run_state = _blocking(AsyncTaskRunClient.set_flow_run_state)
    # Logs
    create_logs = _blocking(AsyncTaskRunClient.create_logs)
    read_logs = _blocking(AsyncTaskRunClient.read_logs)


async def _open(config: ClientConfig) -> AsyncTaskRunClient:
    """Made on the client's loop: a gRPC aio channel belongs to the loop it was made on."""
    return AsyncTaskRunClient(config)


async def _next(stream: AsyncGenerator[Item, None]) -> Item:
    return await anext(stream)
