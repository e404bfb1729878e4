"""TaskRunService: parse the request, call the use case, encode the answer. Nothing else."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from typing import Any

import grpc

from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc as pb_grpc
from taskrun_server.api.answer_budget import add_within_budget
from taskrun_server.api.errors import rpc_status_for
from taskrun_server.api.filter_codec import (
    parse_limit,
    parse_offset,
    parse_page,
    parse_query,
    parse_sort,
    parse_task_run_filter,
)
from taskrun_server.api.offload import carries_json, off_the_loop_if, request_is_large
from taskrun_server.api.rich_status import RichStatus
from taskrun_server.api.task_run_codec import (
    delivery_to_proto,
    heartbeat_to_proto,
    history_to_proto,
    parse_batch_create_request,
    parse_batch_set_state_request,
    parse_create_request,
    parse_heartbeat_request,
    parse_set_state_request,
    state_to_proto,
    stored_run_to_proto,
    task_run_to_proto,
    transition_to_proto,
)
from taskrun_server.api.wire import parse_duration, parse_timestamp
from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.history import MAX_HISTORY_BUCKETS
from taskrun_server.domain.identifiers import parse_id
from taskrun_server.domain.limits import (
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    check_required_text,
    check_text,
)
from taskrun_server.observability.tracing import proposing
from taskrun_server.repository.history import bucket_count
from taskrun_server.service.clock import utcnow
from taskrun_server.service.delivery import DeliveryService, ShuttingDown
from taskrun_server.service.leases import LeaseService
from taskrun_server.service.orchestration import OrchestrationService
from taskrun_server.service.task_runs import TaskRunService
from taskrun_server.service.watch import MAX_WATCHED_RUNS, WatchService

Context = grpc.aio.ServicerContext[Any, Any]


OFFLOAD_BATCH_ITEMS = 50
"""A batch larger than this is parsed and encoded on the heavy-work thread, whatever its bytes:
a thousand small runs cost the loop tens of milliseconds otherwise."""


class TaskRunServicer(pb_grpc.TaskRunServiceServicer):
    def __init__(
        self,
        service: TaskRunService,
        orchestration: OrchestrationService,
        delivery: DeliveryService,
        leases: LeaseService,
        watch: WatchService,
    ) -> None:
        self._service = service
        self._orchestration = orchestration
        self._delivery = delivery
        self._leases = leases
        self._watch = watch

    async def CreateTaskRun(
        self, request: pb.CreateTaskRunRequest, context: Context
    ) -> pb.CreateTaskRunResponse:
        heavy = request_is_large()
        parsed = await off_the_loop_if(heavy, parse_create_request, request)
        with proposing([parsed.state.state_details.traceparent if parsed.state else None]):
            run, created = await self._service.create(parsed)
        answer = await off_the_loop_if(heavy, stored_run_to_proto, run, utcnow())
        return pb.CreateTaskRunResponse(task_run=answer, created=created)

    async def BatchCreateTaskRuns(
        self, request: pb.BatchCreateTaskRunsRequest, context: Context
    ) -> pb.BatchCreateTaskRunsResponse:
        heavy = request_is_large() or len(request.requests) > OFFLOAD_BATCH_ITEMS
        parsed = await off_the_loop_if(heavy, parse_batch_create_request, request)
        results = await self._service.create_many(parsed)
        now = utcnow()

        def encode() -> list[pb.CreateTaskRunResponse]:
            return [
                pb.CreateTaskRunResponse(task_run=stored_run_to_proto(run, now), created=created)
                for run, created in results
            ]

        return pb.BatchCreateTaskRunsResponse(responses=await off_the_loop_if(heavy, encode))

    async def ReadTaskRun(
        self, request: pb.ReadTaskRunRequest, context: Context
    ) -> pb.ReadTaskRunResponse:
        run = await self._service.read(parse_id(request.task_run_id, "task_run_id"))
        heavy = carries_json(run.parameters) or (
            run.state is not None and carries_json(run.state.data)
        )
        return pb.ReadTaskRunResponse(
            task_run=await off_the_loop_if(heavy, task_run_to_proto, run, utcnow())
        )

    async def ReadTaskRuns(
        self, request: pb.ReadTaskRunsRequest, context: Context
    ) -> pb.ReadTaskRunsResponse:
        runs = await self._service.read_many(
            parse_query(request),
            sort=parse_sort(request.sort),
            limit=parse_limit(request.HasField("limit"), request.limit),
            offset=parse_offset(request.offset),
            bulky=_wants_everything(request.view),
        )
        now = utcnow()
        answer = pb.ReadTaskRunsResponse()
        answer.truncated = add_within_budget(
            answer.task_runs, runs, lambda run, into: stored_run_to_proto(run, now, into)
        )
        return answer

    async def PaginateTaskRuns(
        self, request: pb.PaginateTaskRunsRequest, context: Context
    ) -> pb.PaginateTaskRunsResponse:
        page = await self._service.paginate(
            parse_query(request),
            sort=parse_sort(request.sort),
            limit=parse_limit(request.HasField("limit"), request.limit),
            page=parse_page(request.page),
            bulky=_wants_everything(request.view),
        )
        now = utcnow()
        answer = pb.PaginateTaskRunsResponse(
            count=page.count, limit=page.limit, pages=page.pages, page=page.page
        )
        answer.truncated = add_within_budget(
            answer.results, page.results, lambda run, into: stored_run_to_proto(run, now, into)
        )
        return answer

    async def CountTaskRuns(
        self, request: pb.CountTaskRunsRequest, context: Context
    ) -> pb.CountTaskRunsResponse:
        return pb.CountTaskRunsResponse(count=await self._service.count(parse_query(request)))

    async def TaskRunHistory(
        self, request: pb.TaskRunHistoryRequest, context: Context
    ) -> pb.TaskRunHistoryResponse:
        for field in ("history_start", "history_end", "history_interval"):
            if not request.HasField(field):
                raise InvalidArgument("is required", field)
        start = parse_timestamp(request.history_start, "history_start")
        end = parse_timestamp(request.history_end, "history_end")
        interval = parse_duration(request.history_interval, "history_interval")
        if interval.total_seconds() < 1:
            raise InvalidArgument("must be at least 1 second", "history_interval")
        if end <= start:
            raise InvalidArgument("must be after history_start", "history_end")
        buckets = bucket_count(start, end, interval)
        if buckets > MAX_HISTORY_BUCKETS:
            raise InvalidArgument(
                f"makes {buckets} buckets; the limit is {MAX_HISTORY_BUCKETS}", "history_interval"
            )

        intervals = await self._service.history(
            parse_query(request), start=start, end=end, interval=interval
        )
        return history_to_proto(intervals)

    async def UpdateTaskRun(
        self, request: pb.UpdateTaskRunRequest, context: Context
    ) -> pb.UpdateTaskRunResponse:
        task_run_id = parse_id(request.task_run_id, "task_run_id")
        name = (
            check_required_text(request.name, "name", max_bytes=MAX_NAME_BYTES)
            if request.HasField("name")
            else None
        )
        run = await self._service.rename(task_run_id, name)
        return pb.UpdateTaskRunResponse(task_run=task_run_to_proto(run, utcnow()))

    async def DeleteTaskRun(
        self, request: pb.DeleteTaskRunRequest, context: Context
    ) -> pb.DeleteTaskRunResponse:
        await self._service.delete(parse_id(request.task_run_id, "task_run_id"))
        return pb.DeleteTaskRunResponse()

    async def ReadTaskRunState(
        self, request: pb.ReadTaskRunStateRequest, context: Context
    ) -> pb.ReadTaskRunStateResponse:
        state = await self._service.read_state(parse_id(request.state_id, "state_id"))
        return pb.ReadTaskRunStateResponse(state=state_to_proto(state))

    async def ReadTaskRunStates(
        self, request: pb.ReadTaskRunStatesRequest, context: Context
    ) -> pb.ReadTaskRunStatesResponse:
        states = await self._service.read_states(
            parse_id(request.task_run_id, "task_run_id"),
            offset=parse_offset(request.offset),
            limit=MAX_STATES_PER_READ + 1,
        )
        answer = pb.ReadTaskRunStatesResponse()
        truncated = add_within_budget(answer.states, states[:MAX_STATES_PER_READ], state_to_proto)
        answer.truncated = truncated or len(states) > MAX_STATES_PER_READ
        return answer

    async def DeleteTaskRunState(
        self, request: pb.DeleteTaskRunStateRequest, context: Context
    ) -> pb.DeleteTaskRunStateResponse:
        await self._service.delete_state(parse_id(request.state_id, "state_id"))
        return pb.DeleteTaskRunStateResponse()

    async def SetTaskRunState(
        self, request: pb.SetTaskRunStateRequest, context: Context
    ) -> pb.SetTaskRunStateResponse:
        heavy = request_is_large()
        proposal = await off_the_loop_if(heavy, parse_set_state_request, request)
        with proposing([proposal.proposed.state_details.traceparent]):
            transition = await self._orchestration.set_state(proposal)
        heavy = heavy or carries_json(transition.run.parameters)
        return await off_the_loop_if(heavy, transition_to_proto, transition, utcnow())

    async def BatchSetTaskRunStates(
        self, request: pb.BatchSetTaskRunStatesRequest, context: Context
    ) -> pb.BatchSetTaskRunStatesResponse:
        heavy = request_is_large() or len(request.requests) > OFFLOAD_BATCH_ITEMS
        proposals = await off_the_loop_if(heavy, parse_batch_set_state_request, request)
        with proposing(p.proposed.state_details.traceparent for p in proposals):
            results = await self._orchestration.set_states(proposals)
        now = utcnow()

        def encode() -> pb.BatchSetTaskRunStatesResponse:
            return pb.BatchSetTaskRunStatesResponse(
                results=[
                    pb.BatchSetTaskRunStateResult(error=rpc_status_for(result))
                    if isinstance(result, Exception)
                    else pb.BatchSetTaskRunStateResult(response=transition_to_proto(result, now))
                    for result in results
                ]
            )

        return await off_the_loop_if(heavy, encode)

    async def WatchTaskRuns(
        self, request: pb.WatchTaskRunsRequest, context: Context
    ) -> AsyncIterator[pb.WatchTaskRunsResponse]:
        bulky = _wants_everything(request.view)
        if request.task_run_ids and request.HasField("task_runs"):
            raise InvalidArgument("set task_run_ids or task_runs, not both", "task_runs")
        if request.task_run_ids:
            ids = _parse_watched_ids(request.task_run_ids)
            changes = self._watch.watch_runs(
                ids, until_terminal=request.until_terminal, bulky=bulky
            )
        elif request.HasField("task_runs"):
            if request.until_terminal:
                raise InvalidArgument("needs task_run_ids: a filter has no end", "until_terminal")
            changes = self._watch.watch_matching(parse_task_run_filter(request), bulky=bulky)
        else:
            raise InvalidArgument("name the runs to watch, or a filter", "task_run_ids")
        try:
            async for run in changes:
                yield pb.WatchTaskRunsResponse(task_run=stored_run_to_proto(run, utcnow()))
        except ShuttingDown:
            await RichStatus(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; watch again",
                "SHUTTING_DOWN",
                retry_after=RESUBSCRIBE_AFTER,
            ).abort(context)

    async def HeartbeatTaskRuns(
        self, request: pb.HeartbeatTaskRunsRequest, context: Context
    ) -> pb.HeartbeatTaskRunsResponse:
        heartbeat = await self._leases.heartbeat(parse_heartbeat_request(request))
        return heartbeat_to_proto(heartbeat)

    async def SubscribeScheduledTasks(
        self, request: pb.SubscribeScheduledTasksRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeScheduledTasksResponse]:
        keys = _parse_task_keys(request.task_keys)
        client_id = check_text(request.client_id, "client_id", max_bytes=MAX_NAME_BYTES)
        if not 0 <= request.prefetch <= MAX_PREFETCH:
            raise InvalidArgument(f"must be between 1 and {MAX_PREFETCH}", "prefetch")
        prefetch = request.prefetch or DEFAULT_PREFETCH
        try:
            async for delivery in self._delivery.subscribe(keys, client_id, prefetch):
                yield delivery_to_proto(delivery, utcnow())
        except ShuttingDown:
            await RichStatus(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; subscribe again",
                "SHUTTING_DOWN",
                retry_after=RESUBSCRIBE_AFTER,
            ).abort(context)


RESUBSCRIBE_AFTER = timedelta(seconds=1)
MAX_STATES_PER_READ = 1000
"""States in one ReadTaskRunStates answer; `truncated` and `offset` reach the rest."""
DEFAULT_PREFETCH = 10
MAX_PREFETCH = 1000
MAX_SUBSCRIBED_KEYS = 100


def _wants_everything(view: pb.TaskRunView.ValueType) -> bool:
    """FULL includes the bulky fields; BASIC and unset leave them out. Unknown views (from a
    newer client) are read as the default."""
    return view == pb.TASK_RUN_VIEW_FULL


def _parse_watched_ids(values: Sequence[str]) -> list[uuid.UUID]:
    if len(values) > MAX_WATCHED_RUNS:
        raise InvalidArgument(f"at most {MAX_WATCHED_RUNS:,} runs", "task_run_ids")
    return [parse_id(value, f"task_run_ids[{i}]") for i, value in enumerate(values)]


def _parse_task_keys(values: Iterable[str]) -> list[str]:
    keys = list(values)
    if not keys:
        raise InvalidArgument("at least one task key is required", "task_keys")
    if len(keys) > MAX_SUBSCRIBED_KEYS:
        raise InvalidArgument(f"at most {MAX_SUBSCRIBED_KEYS} keys", "task_keys")
    for i, key in enumerate(keys):
        check_required_text(key, f"task_keys[{i}]", max_bytes=MAX_KEY_BYTES)
    return list(dict.fromkeys(keys))
