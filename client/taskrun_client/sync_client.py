"""TaskRunClient: the task-run API for ordinary (blocking) programs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import grpc

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc as rpc
from taskrun_client import requests
from taskrun_client.channels import sync_channel
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError
from taskrun_client.retries import (
    settle_duplicate,
    settle_duplicates,
    with_transition_id,
    with_transition_ids,
)


class TaskRunClient:
    """The blocking twin of AsyncTaskRunClient, with the same deadlines, retries and errors."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._channel = sync_channel(self.config)
        self._stub: Any = rpc.TaskRunServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TaskRunClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        """One call under the deadline; gRPC's retry policy (the channel's service config)
        retries it when that is safe."""
        try:
            return getattr(self._stub, method)(
                request, timeout=self.config.timeout, metadata=self.config.metadata()
            )
        except grpc.RpcError as error:
            raise TaskRunError.from_rpc_error(error) from None

    def create_task_run(
        self, task_key: str, dynamic_key: str, **fields: Any
    ) -> pb.CreateTaskRunResponse:
        response: pb.CreateTaskRunResponse = self._call(
            "CreateTaskRun", requests.create_task_run(task_key, dynamic_key, **fields)
        )
        return response

    def batch_create_task_runs(
        self, items: list[pb.CreateTaskRunRequest]
    ) -> list[pb.CreateTaskRunResponse]:
        """Create up to 1,000 runs in one call, all or nothing; answers in request order."""
        response = self._call("BatchCreateTaskRuns", pb.BatchCreateTaskRunsRequest(requests=items))
        return list(response.responses)

    def read_task_run(self, task_run_id: str) -> task_run_pb2.TaskRun:
        response = self._call("ReadTaskRun", pb.ReadTaskRunRequest(task_run_id=task_run_id))
        return response.task_run  # type: ignore[no-any-return]

    def read_task_runs(self, **request: Any) -> list[task_run_pb2.TaskRun]:
        return list(self._call("ReadTaskRuns", pb.ReadTaskRunsRequest(**request)).task_runs)

    def paginate_task_runs(self, **request: Any) -> pb.PaginateTaskRunsResponse:
        response: pb.PaginateTaskRunsResponse = self._call(
            "PaginateTaskRuns", pb.PaginateTaskRunsRequest(**request)
        )
        return response

    def count_task_runs(self, **filters: Any) -> int:
        return int(self._call("CountTaskRuns", pb.CountTaskRunsRequest(**filters)).count)

    def task_run_history(
        self, start: datetime, end: datetime, interval: timedelta, **filters: Any
    ) -> list[pb.HistoryInterval]:
        response = self._call("TaskRunHistory", requests.history(start, end, interval, **filters))
        return list(response.intervals)

    def update_task_run(self, task_run_id: str, *, name: str) -> task_run_pb2.TaskRun:
        request = pb.UpdateTaskRunRequest(task_run_id=task_run_id, name=name)
        return self._call("UpdateTaskRun", request).task_run  # type: ignore[no-any-return]

    def delete_task_run(self, task_run_id: str) -> None:
        self._call("DeleteTaskRun", pb.DeleteTaskRunRequest(task_run_id=task_run_id))

    def read_task_run_states(self, task_run_id: str) -> list[state_pb2.State]:
        request = pb.ReadTaskRunStatesRequest(task_run_id=task_run_id)
        return list(self._call("ReadTaskRunStates", request).states)

    def set_task_run_state(
        self,
        task_run_id: str,
        state: state_pb2.StateCreate | int,
        *,
        force: bool = False,
        lease_id: str = "",
        **naming: str,
    ) -> pb.SetTaskRunStateResponse:
        request = requests.set_state(task_run_id, state, force, lease_id, **naming)
        transition_id = with_transition_id(request)
        response: pb.SetTaskRunStateResponse = self._call("SetTaskRunState", request)
        settle_duplicate(response, transition_id)
        return response

    def batch_set_task_run_states(
        self, proposals: list[pb.SetTaskRunStateRequest]
    ) -> list[pb.BatchSetTaskRunStateResult]:
        """Propose states for up to 1,000 runs in one call, each orchestrated on its own; a
        result per proposal, in order: its answer, or its own error (NOT_FOUND). Safe to retry:
        every proposal carries a transition id."""
        request = pb.BatchSetTaskRunStatesRequest(requests=proposals)
        transition_ids = with_transition_ids(request)
        response: pb.BatchSetTaskRunStatesResponse = self._call("BatchSetTaskRunStates", request)
        settle_duplicates(response, transition_ids)
        return list(response.results)

    def heartbeat_task_runs(self, leases: list[tuple[str, str]]) -> pb.HeartbeatTaskRunsResponse:
        """Renew the (task run id, lease id) pairs held; each result says HELD, CANCELLING or
        LOST, and `next_heartbeat` when to call again."""
        response: pb.HeartbeatTaskRunsResponse = self._call(
            "HeartbeatTaskRuns", requests.heartbeat(leases)
        )
        return response

    def subscribe_scheduled_tasks(
        self, task_keys: list[str], *, prefetch: int = 10, client_id: str = ""
    ) -> Iterator[pb.SubscribeScheduledTasksResponse]:
        call = self._stub.SubscribeScheduledTasks(
            requests.subscribe(task_keys, prefetch, client_id), metadata=self.config.metadata()
        )
        try:
            yield from call
        except grpc.RpcError as error:
            raise TaskRunError.from_rpc_error(error) from None
        finally:
            call.cancel()
