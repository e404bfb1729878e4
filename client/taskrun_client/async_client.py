"""AsyncTaskRunClient: every taskrun service, for asyncio programs.

Every call has a deadline (`config.timeout`) and waits for a connection within it; calls that
are safe to repeat are retried on UNAVAILABLE by gRPC's retry policy (see `retries`); failures
raise TaskRunError with the server's structured details. State types and sorts may be given by
name ("RUNNING"). TaskRunClient offers the same calls, blocking, with the same answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import struct_pb2

from taskrun.v1 import (
    concurrency_limits_pb2,
    concurrency_limits_pb2_grpc,
    filters_pb2,
    resources_pb2,
    resources_pb2_grpc,
    state_pb2,
    task_run_pb2,
)
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc as rpc
from taskrun_client import requests
from taskrun_client.channels import aio_channel
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError
from taskrun_client.naming import SortLike, StateTypeLike, is_terminal, state_type
from taskrun_client.naming import sort as sort_value
from taskrun_client.requests import Filters
from taskrun_client.retries import (
    settle_duplicate,
    settle_duplicates,
    with_transition_id,
    with_transition_ids,
)

Response = TypeVar("Response")
Request = TypeVar("Request")
ProposedState: TypeAlias = state_pb2.StateCreate | StateTypeLike


class AsyncTaskRunClient:
    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig.from_env()
        self._channel = aio_channel(self.config)
        # The generated stubs' __new__ answers an aio channel with their *AsyncStub types.
        self._task_runs = rpc.TaskRunServiceStub(self._channel)
        self._limits = concurrency_limits_pb2_grpc.ConcurrencyLimitServiceStub(self._channel)
        self._flows = resources_pb2_grpc.FlowServiceStub(self._channel)
        self._deployments = resources_pb2_grpc.DeploymentServiceStub(self._channel)
        self._flow_runs = resources_pb2_grpc.FlowRunServiceStub(self._channel)
        self._logs = resources_pb2_grpc.LogServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncTaskRunClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Awaitable[Response]], request: Request) -> Response:
        """One call under the deadline; gRPC's retry policy (the channel's service config)
        retries it when that is safe."""
        try:
            return await method(
                request, timeout=self.config.timeout, metadata=self.config.metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise TaskRunError.from_rpc_error(error) from None

    async def _stream(
        self, method: Callable[..., Any], request: Request
    ) -> AsyncGenerator[Response, None]:
        """A server stream, without a deadline: it lasts as long as the caller reads it."""
        call = method(request, metadata=self.config.metadata())
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise TaskRunError.from_rpc_error(error) from None
        finally:
            call.cancel()

    # -- task runs --------------------------------------------------------------------------

    async def create_task_run(
        self,
        task_key: str,
        dynamic_key: str,
        *,
        name: str = "",
        id: str = "",
        flow_run_id: str = "",
        tags: Sequence[str] = (),
        labels: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | struct_pb2.Struct | None = None,
        state: ProposedState | None = None,
        empirical_policy: task_run_pb2.TaskRunPolicy | None = None,
        cache_key: str = "",
        task_version: str = "",
    ) -> pb.CreateTaskRunResponse:
        """Create a run, or get the one with this key (`created` says which)."""
        request = requests.create_task_run(
            task_key,
            dynamic_key,
            name=name,
            id=id,
            flow_run_id=flow_run_id,
            tags=tags,
            labels=labels,
            parameters=parameters,
            state=state,
            empirical_policy=empirical_policy,
            cache_key=cache_key,
            task_version=task_version,
        )
        return await self._call(self._task_runs.CreateTaskRun, request)

    async def batch_create_task_runs(
        self, items: Sequence[pb.CreateTaskRunRequest]
    ) -> list[pb.CreateTaskRunResponse]:
        """Create up to 1,000 runs in one call, all or nothing; answers in request order."""
        request = pb.BatchCreateTaskRunsRequest(requests=items)
        response = await self._call(self._task_runs.BatchCreateTaskRuns, request)
        return list(response.responses)

    async def read_task_run(self, task_run_id: str) -> task_run_pb2.TaskRun:
        request = pb.ReadTaskRunRequest(task_run_id=task_run_id)
        return (await self._call(self._task_runs.ReadTaskRun, request)).task_run

    async def read_task_runs(
        self,
        *,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        flow_runs: filters_pb2.FlowRunFilter | None = None,
        flows: filters_pb2.FlowFilter | None = None,
        deployments: filters_pb2.DeploymentFilter | None = None,
        sort: SortLike = "ID_DESC",
        limit: int = 200,
        offset: int = 0,
        full: bool = False,
    ) -> list[task_run_pb2.TaskRun]:
        """One page of matching runs (at most 200); `iter_task_runs` reads them all. `full`:
        with their parameters and state data."""
        filters = Filters(task_runs, flow_runs, flows, deployments)
        response = await self._read_page(filters, sort, limit, offset, full)
        return list(response.task_runs)

    async def iter_task_runs(
        self,
        *,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        flow_runs: filters_pb2.FlowRunFilter | None = None,
        flows: filters_pb2.FlowFilter | None = None,
        deployments: filters_pb2.DeploymentFilter | None = None,
        sort: SortLike = "ID_DESC",
        full: bool = False,
        page_size: int = 200,
    ) -> AsyncGenerator[task_run_pb2.TaskRun, None]:
        """Every matching run, page after page (by offset: runs created meanwhile may shift
        the pages of an ID_DESC read; sort by expected start time for a stable walk)."""
        filters = Filters(task_runs, flow_runs, flows, deployments)
        offset = 0
        while True:
            page = await self._read_page(filters, sort, page_size, offset, full)
            for run in page.task_runs:
                yield run
            offset += len(page.task_runs)
            if not page.task_runs or (len(page.task_runs) < page_size and not page.truncated):
                return

    async def _read_page(
        self, filters: Filters, order: SortLike, limit: int, offset: int, full: bool
    ) -> pb.ReadTaskRunsResponse:
        request = pb.ReadTaskRunsRequest(
            sort=sort_value(order),
            limit=limit,
            offset=offset,
            view=requests.view(full),
            **filters.fields(),
        )
        return await self._call(self._task_runs.ReadTaskRuns, request)

    async def paginate_task_runs(
        self,
        *,
        page: int = 1,
        limit: int = 200,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        flow_runs: filters_pb2.FlowRunFilter | None = None,
        flows: filters_pb2.FlowFilter | None = None,
        deployments: filters_pb2.DeploymentFilter | None = None,
        sort: SortLike = "ID_DESC",
        full: bool = False,
    ) -> pb.PaginateTaskRunsResponse:
        request = pb.PaginateTaskRunsRequest(
            page=page,
            limit=limit,
            sort=sort_value(sort),
            view=requests.view(full),
            **Filters(task_runs, flow_runs, flows, deployments).fields(),
        )
        return await self._call(self._task_runs.PaginateTaskRuns, request)

    async def count_task_runs(
        self,
        *,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        flow_runs: filters_pb2.FlowRunFilter | None = None,
        flows: filters_pb2.FlowFilter | None = None,
        deployments: filters_pb2.DeploymentFilter | None = None,
    ) -> int:
        filters = Filters(task_runs, flow_runs, flows, deployments)
        request = pb.CountTaskRunsRequest(**filters.fields())
        return (await self._call(self._task_runs.CountTaskRuns, request)).count

    async def task_run_history(
        self,
        start: datetime,
        end: datetime,
        interval: timedelta,
        *,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        flow_runs: filters_pb2.FlowRunFilter | None = None,
        flows: filters_pb2.FlowFilter | None = None,
        deployments: filters_pb2.DeploymentFilter | None = None,
    ) -> list[pb.HistoryInterval]:
        filters = Filters(task_runs, flow_runs, flows, deployments)
        request = requests.history(start, end, interval, filters)
        return list((await self._call(self._task_runs.TaskRunHistory, request)).intervals)

    async def update_task_run(self, task_run_id: str, *, name: str) -> task_run_pb2.TaskRun:
        request = pb.UpdateTaskRunRequest(task_run_id=task_run_id, name=name)
        return (await self._call(self._task_runs.UpdateTaskRun, request)).task_run

    async def delete_task_run(self, task_run_id: str) -> None:
        request = pb.DeleteTaskRunRequest(task_run_id=task_run_id)
        await self._call(self._task_runs.DeleteTaskRun, request)

    async def read_task_run_state(self, state_id: str) -> state_pb2.State:
        request = pb.ReadTaskRunStateRequest(state_id=state_id)
        return (await self._call(self._task_runs.ReadTaskRunState, request)).state

    async def read_task_run_states(self, task_run_id: str) -> list[state_pb2.State]:
        """A run's whole state history, oldest first (however many answers it takes)."""
        states: list[state_pb2.State] = []
        while True:
            request = pb.ReadTaskRunStatesRequest(task_run_id=task_run_id, offset=len(states))
            response = await self._call(self._task_runs.ReadTaskRunStates, request)
            states += response.states
            if not response.truncated or not response.states:
                return states

    async def delete_task_run_state(self, state_id: str) -> None:
        request = pb.DeleteTaskRunStateRequest(state_id=state_id)
        await self._call(self._task_runs.DeleteTaskRunState, request)

    async def set_task_run_state(
        self,
        task_run_id: str,
        state: ProposedState,
        *,
        force: bool = False,
        lease_id: str = "",
        name: str = "",
        message: str = "",
    ) -> pb.SetTaskRunStateResponse:
        """Propose a state (a StateCreate, or a state type by name or value). Safe to retry:
        the proposal carries a transition id."""
        request = requests.set_state(
            task_run_id, state, force, lease_id, name=name, message=message
        )
        transition_id = with_transition_id(request)
        response = await self._call(self._task_runs.SetTaskRunState, request)
        settle_duplicate(response, transition_id)
        return response

    async def batch_set_task_run_states(
        self, proposals: Sequence[pb.SetTaskRunStateRequest]
    ) -> list[pb.BatchSetTaskRunStateResult]:
        """Propose states for up to 1,000 runs in one call, each orchestrated on its own; a
        result per proposal, in order: its answer, or its own error (`TaskRunError.
        from_batch_item` reads it). Safe to retry: every proposal carries a transition id."""
        request = pb.BatchSetTaskRunStatesRequest(requests=proposals)
        transition_ids = with_transition_ids(request)
        response = await self._call(self._task_runs.BatchSetTaskRunStates, request)
        settle_duplicates(response, transition_ids)
        return list(response.results)

    async def heartbeat_task_runs(
        self, leases: Sequence[tuple[str, str]]
    ) -> pb.HeartbeatTaskRunsResponse:
        """Renew the (task run id, lease id) pairs held; each result says HELD, CANCELLING or
        LOST, and `next_heartbeat` when to call again."""
        return await self._call(self._task_runs.HeartbeatTaskRuns, requests.heartbeat(leases))

    def subscribe_scheduled_tasks(
        self, task_keys: Sequence[str], *, prefetch: int = 10, client_id: str = ""
    ) -> AsyncGenerator[pb.SubscribeScheduledTasksResponse, None]:
        """Deliveries, each under a lease, until the stream ends (a worker's inbox)."""
        request = requests.subscribe(task_keys, prefetch, client_id)
        return self._stream(self._task_runs.SubscribeScheduledTasks, request)

    def watch_task_runs(
        self,
        task_run_ids: Sequence[str] = (),
        *,
        task_runs: filters_pb2.TaskRunFilter | None = None,
        until_terminal: bool = False,
        full: bool = False,
    ) -> AsyncGenerator[task_run_pb2.TaskRun, None]:
        """The runs named, as they are and then after each state change (or every run the
        filter matches as it changes). Takes no lease. `full`: with the state data."""
        request = pb.WatchTaskRunsRequest(
            task_run_ids=task_run_ids,
            task_runs=task_runs,
            until_terminal=until_terminal,
            view=requests.view(full),
        )
        return _runs_of(self._stream(self._task_runs.WatchTaskRuns, request))

    async def wait(self, task_run_id: str, timeout: float | None = None) -> task_run_pb2.TaskRun:  # noqa: ASYNC109 (one deadline for the whole wait)
        """The run once it reaches a terminal state, with its result (the state's data).
        Pushed by the server as it happens, no polling; TimeoutError after `timeout` seconds.
        A run that retries is waited for through its retries."""
        async with asyncio.timeout(timeout):
            last: task_run_pb2.TaskRun | None = None
            async for run in self.watch_task_runs([task_run_id], until_terminal=True, full=True):
                last = run
            if last is None or not is_terminal(last.state_type):  # the stream ended early
                raise TaskRunError(grpc.StatusCode.UNAVAILABLE, "the watch ended; wait again")
            return last

    # -- concurrency limits -----------------------------------------------------------------

    async def create_concurrency_limit(
        self, tag: str, limit: int
    ) -> concurrency_limits_pb2.CreateConcurrencyLimitResponse:
        """Create the tag's limit, or change it (`created` says which)."""
        request = concurrency_limits_pb2.CreateConcurrencyLimitRequest(
            tag=tag, concurrency_limit=limit
        )
        return await self._call(self._limits.CreateConcurrencyLimit, request)

    async def read_concurrency_limit(self, tag: str) -> concurrency_limits_pb2.ConcurrencyLimit:
        request = concurrency_limits_pb2.ReadConcurrencyLimitRequest(tag=tag)
        return (await self._call(self._limits.ReadConcurrencyLimit, request)).concurrency_limit

    async def read_concurrency_limits(
        self, *, limit: int = 200, offset: int = 0
    ) -> list[concurrency_limits_pb2.ConcurrencyLimit]:
        request = concurrency_limits_pb2.ReadConcurrencyLimitsRequest(limit=limit, offset=offset)
        response = await self._call(self._limits.ReadConcurrencyLimits, request)
        return list(response.concurrency_limits)

    async def reset_concurrency_limit(self, tag: str) -> concurrency_limits_pb2.ConcurrencyLimit:
        """Free every slot the tag's limit holds."""
        request = concurrency_limits_pb2.ResetConcurrencyLimitRequest(tag=tag)
        return (await self._call(self._limits.ResetConcurrencyLimit, request)).concurrency_limit

    async def delete_concurrency_limit(self, tag: str) -> None:
        request = concurrency_limits_pb2.DeleteConcurrencyLimitRequest(tag=tag)
        await self._call(self._limits.DeleteConcurrencyLimit, request)

    # -- flows, deployments, flow runs ------------------------------------------------------

    async def create_flow(
        self, name: str, *, tags: Sequence[str] = ()
    ) -> resources_pb2.CreateFlowResponse:
        request = resources_pb2.CreateFlowRequest(name=name, tags=tags)
        return await self._call(self._flows.CreateFlow, request)

    async def read_flow(self, flow_id: str) -> resources_pb2.Flow:
        request = resources_pb2.ReadFlowRequest(flow_id=flow_id)
        return (await self._call(self._flows.ReadFlow, request)).flow

    async def create_deployment(
        self, flow_id: str, name: str, *, tags: Sequence[str] = ()
    ) -> resources_pb2.CreateDeploymentResponse:
        request = resources_pb2.CreateDeploymentRequest(flow_id=flow_id, name=name, tags=tags)
        return await self._call(self._deployments.CreateDeployment, request)

    async def read_deployment(self, deployment_id: str) -> resources_pb2.Deployment:
        request = resources_pb2.ReadDeploymentRequest(deployment_id=deployment_id)
        return (await self._call(self._deployments.ReadDeployment, request)).deployment

    async def create_flow_run(
        self,
        flow_id: str,
        *,
        name: str = "",
        deployment_id: str = "",
        parent_task_run_id: str = "",
        tags: Sequence[str] = (),
        state: StateTypeLike | None = None,
        state_name: str = "",
    ) -> resources_pb2.FlowRun:
        request = resources_pb2.CreateFlowRunRequest(
            flow_id=flow_id,
            name=name,
            deployment_id=deployment_id,
            parent_task_run_id=parent_task_run_id,
            tags=tags,
            state_name=state_name,
        )
        if state is not None:
            request.state_type = state_type(state)
        return (await self._call(self._flow_runs.CreateFlowRun, request)).flow_run

    async def read_flow_run(self, flow_run_id: str) -> resources_pb2.FlowRun:
        request = resources_pb2.ReadFlowRunRequest(flow_run_id=flow_run_id)
        return (await self._call(self._flow_runs.ReadFlowRun, request)).flow_run

    async def set_flow_run_state(
        self, flow_run_id: str, state: StateTypeLike, *, name: str = ""
    ) -> resources_pb2.FlowRun:
        request = resources_pb2.SetFlowRunStateRequest(
            flow_run_id=flow_run_id, state_type=state_type(state), state_name=name
        )
        return (await self._call(self._flow_runs.SetFlowRunState, request)).flow_run

    # -- logs -------------------------------------------------------------------------------

    async def create_logs(self, logs: Sequence[resources_pb2.LogCreate]) -> int:
        """Write log lines (at most 1,000 a call). Not retried: a retry could write twice."""
        request = resources_pb2.CreateLogsRequest(logs=logs)
        return (await self._call(self._logs.CreateLogs, request)).count

    async def read_logs(
        self, *, task_run_id: str = "", flow_run_id: str = "", limit: int = 200, offset: int = 0
    ) -> resources_pb2.ReadLogsResponse:
        """A page of a run's logs, oldest first (`truncated` says whether more remain)."""
        request = resources_pb2.ReadLogsRequest(
            task_run_id=task_run_id, flow_run_id=flow_run_id, limit=limit, offset=offset
        )
        return await self._call(self._logs.ReadLogs, request)


async def _runs_of(
    stream: AsyncGenerator[pb.WatchTaskRunsResponse, None],
) -> AsyncGenerator[task_run_pb2.TaskRun, None]:
    try:
        async for message in stream:
            yield message.task_run
    finally:
        await stream.aclose()
