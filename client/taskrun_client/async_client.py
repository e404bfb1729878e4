"""AsyncTaskRunClient: the task-run API for asyncio programs."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import grpc

from taskrun.v1 import resources_pb2, resources_pb2_grpc, state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc as rpc
from taskrun_client import requests
from taskrun_client.channels import aio_channel
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError
from taskrun_client.retries import (
    settle_duplicate,
    settle_duplicates,
    with_transition_id,
    with_transition_ids,
)


class AsyncTaskRunClient:
    """Every call has a deadline (`config.timeout`) and waits for a connection within it;
    retry-safe calls are retried on UNAVAILABLE by gRPC's retry policy; failures raise
    TaskRunError."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._channel = aio_channel(self.config)
        self._stub: Any = rpc.TaskRunServiceStub(self._channel)
        self._log_stub: Any = resources_pb2_grpc.LogServiceStub(self._channel)

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

    async def _call(self, method: str, request: Any, stub: Any = None) -> Any:
        """One call under the deadline; gRPC's retry policy (the channel's service config)
        retries it when that is safe."""
        try:
            return await getattr(stub or self._stub, method)(
                request, timeout=self.config.timeout, metadata=self.config.metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise TaskRunError.from_rpc_error(error) from None

    async def create_task_run(
        self, task_key: str, dynamic_key: str, **fields: Any
    ) -> pb.CreateTaskRunResponse:
        """Create a run, or get the one with this key (`created` says which)."""
        response: pb.CreateTaskRunResponse = await self._call(
            "CreateTaskRun", requests.create_task_run(task_key, dynamic_key, **fields)
        )
        return response

    async def batch_create_task_runs(
        self, items: list[pb.CreateTaskRunRequest]
    ) -> list[pb.CreateTaskRunResponse]:
        """Create up to 1,000 runs in one call, all or nothing; answers in request order."""
        response = await self._call(
            "BatchCreateTaskRuns", pb.BatchCreateTaskRunsRequest(requests=items)
        )
        return list(response.responses)

    async def read_task_run(self, task_run_id: str) -> task_run_pb2.TaskRun:
        response = await self._call("ReadTaskRun", pb.ReadTaskRunRequest(task_run_id=task_run_id))
        return response.task_run  # type: ignore[no-any-return]

    async def read_task_runs(self, **request: Any) -> list[task_run_pb2.TaskRun]:
        response = await self._call("ReadTaskRuns", pb.ReadTaskRunsRequest(**request))
        return list(response.task_runs)

    async def paginate_task_runs(self, **request: Any) -> pb.PaginateTaskRunsResponse:
        response: pb.PaginateTaskRunsResponse = await self._call(
            "PaginateTaskRuns", pb.PaginateTaskRunsRequest(**request)
        )
        return response

    async def count_task_runs(self, **filters: Any) -> int:
        response = await self._call("CountTaskRuns", pb.CountTaskRunsRequest(**filters))
        return int(response.count)

    async def task_run_history(
        self, start: datetime, end: datetime, interval: timedelta, **filters: Any
    ) -> list[pb.HistoryInterval]:
        response = await self._call(
            "TaskRunHistory", requests.history(start, end, interval, **filters)
        )
        return list(response.intervals)

    async def update_task_run(self, task_run_id: str, *, name: str) -> task_run_pb2.TaskRun:
        response = await self._call(
            "UpdateTaskRun", pb.UpdateTaskRunRequest(task_run_id=task_run_id, name=name)
        )
        return response.task_run  # type: ignore[no-any-return]

    async def delete_task_run(self, task_run_id: str) -> None:
        await self._call("DeleteTaskRun", pb.DeleteTaskRunRequest(task_run_id=task_run_id))

    async def read_task_run_states(self, task_run_id: str) -> list[state_pb2.State]:
        response = await self._call(
            "ReadTaskRunStates", pb.ReadTaskRunStatesRequest(task_run_id=task_run_id)
        )
        return list(response.states)

    async def set_task_run_state(
        self,
        task_run_id: str,
        state: state_pb2.StateCreate | int,
        *,
        force: bool = False,
        lease_id: str = "",
        **naming: str,
    ) -> pb.SetTaskRunStateResponse:
        """Propose a state. Safe to retry: the proposal carries a transition id."""
        request = requests.set_state(task_run_id, state, force, lease_id, **naming)
        transition_id = with_transition_id(request)
        response: pb.SetTaskRunStateResponse = await self._call("SetTaskRunState", request)
        settle_duplicate(response, transition_id)
        return response

    async def batch_set_task_run_states(
        self, proposals: list[pb.SetTaskRunStateRequest]
    ) -> list[pb.BatchSetTaskRunStateResult]:
        """Propose states for up to 1,000 runs in one call, each orchestrated on its own; a
        result per proposal, in order: its answer, or its own error (NOT_FOUND). Safe to retry:
        every proposal carries a transition id."""
        request = pb.BatchSetTaskRunStatesRequest(requests=proposals)
        transition_ids = with_transition_ids(request)
        response: pb.BatchSetTaskRunStatesResponse = await self._call(
            "BatchSetTaskRunStates", request
        )
        settle_duplicates(response, transition_ids)
        return list(response.results)

    async def heartbeat_task_runs(
        self, leases: list[tuple[str, str]]
    ) -> pb.HeartbeatTaskRunsResponse:
        """Renew the (task run id, lease id) pairs held; each result says HELD, CANCELLING or
        LOST, and `next_heartbeat` when to call again."""
        response: pb.HeartbeatTaskRunsResponse = await self._call(
            "HeartbeatTaskRuns", requests.heartbeat(leases)
        )
        return response

    async def create_logs(self, logs: list[resources_pb2.LogCreate]) -> int:
        """Write log lines (at most 1000 per call). Not retried: a retry could write twice."""
        request = resources_pb2.CreateLogsRequest(logs=logs)
        response = await self._call("CreateLogs", request, self._log_stub)
        return int(response.count)

    async def subscribe_scheduled_tasks(
        self, task_keys: list[str], *, prefetch: int = 10, client_id: str = ""
    ) -> AsyncGenerator[pb.SubscribeScheduledTasksResponse, None]:
        """Deliveries until the stream ends. No deadline: it lasts as long as the worker."""
        call = self._stub.SubscribeScheduledTasks(
            requests.subscribe(task_keys, prefetch, client_id), metadata=self.config.metadata()
        )
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise TaskRunError.from_rpc_error(error) from None
        finally:
            call.cancel()
