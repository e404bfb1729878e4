"""A worker's state proposals, sent together: the proposals its tasks make while a call is
under way go in the next `BatchSetTaskRunStates` call, each answered as a lone
`SetTaskRunState` would have been. A worker running many tasks at once then pays one call,
and the server one orchestration batch, for what arrived together, and a lone proposal is sent
at once (one call in flight at a time: no timer, no added wait)."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.async_client import AsyncTaskRunClient
from taskrun_client.errors import TaskRunError

MAX_PROPOSALS = 256
"""Proposals in one call (the server takes up to 1,000)."""

MAX_BATCH_BYTES = 1024 * 1024
"""Encoded bytes of one call's proposals: a state's data may be a megabyte, and the server
refuses requests over four. A proposal larger than this goes alone."""

_REFUSED_AS_A_REQUEST = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)

_Waiting = tuple[pb.SetTaskRunStateRequest, "asyncio.Future[pb.SetTaskRunStateResponse]"]
"""A proposal and where its answer goes."""


class ProposalBatcher:
    """Sends the proposals of one client together. Use from one event loop."""

    def __init__(self, client: AsyncTaskRunClient) -> None:
        self._client = client
        self._waiting: list[_Waiting] = []
        self._sending: asyncio.Task[None] | None = None

    async def propose(
        self, task_run_id: str, state: state_pb2.StateCreate, *, lease_id: str = ""
    ) -> pb.SetTaskRunStateResponse:
        """Propose `state` as `set_task_run_state` does (a fresh transition id each call);
        raises TaskRunError with the proposal's own error."""
        request = pb.SetTaskRunStateRequest(task_run_id=task_run_id, lease_id=lease_id)
        request.state.CopyFrom(state)
        answer: asyncio.Future[pb.SetTaskRunStateResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((request, answer))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_while_waiting())
        return await answer

    async def close(self) -> None:
        """Wait for the proposals already made to be answered."""
        if self._sending is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._sending)

    async def _send_while_waiting(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch = self._take()
                await self._send(batch)
        except BaseException as error:  # cancelled, or a bug: no caller may wait for ever
            for _, answer in [*batch, *self._waiting]:
                _fail(answer, error)
            self._waiting = []
            raise
        finally:
            self._sending = None

    def _take(self) -> list[_Waiting]:
        """The oldest proposals that fit in one call (at least one, however large)."""
        size = 0
        count = 0
        for request, _ in self._waiting[:MAX_PROPOSALS]:
            size += request.ByteSize()
            if count and size > MAX_BATCH_BYTES:
                break
            count += 1
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        return batch

    async def _send(self, batch: list[_Waiting]) -> None:
        if len(batch) == 1:  # alone: the plain call, its error as it is
            await self._send_alone(*batch[0])
            return
        try:
            results = await self._client.batch_set_task_run_states([r for r, _ in batch])
        except TaskRunError as error:
            if error.code in _REFUSED_AS_A_REQUEST:
                # One proposal may be at fault (too large, say): each alone, for its own answer.
                for request, answer in batch:
                    await self._send_alone(request, answer)
                return
            for _, answer in batch:
                _fail(answer, error)
            return
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():  # its caller gave up
                continue
            if result.HasField("response"):
                answer.set_result(result.response)
            else:
                answer.set_exception(TaskRunError.from_batch_item(result.error))

    async def _send_alone(
        self, request: pb.SetTaskRunStateRequest, answer: asyncio.Future[pb.SetTaskRunStateResponse]
    ) -> None:
        try:
            response = await self._client.set_task_run_state(
                request.task_run_id, request.state, lease_id=request.lease_id
            )
        except TaskRunError as error:
            _fail(answer, error)
            return
        if not answer.done():
            answer.set_result(response)


def _fail(answer: asyncio.Future[pb.SetTaskRunStateResponse], error: BaseException) -> None:
    """Give the caller the error, or cancel its wait if the sending was cancelled."""
    if answer.done():
        return
    if isinstance(error, asyncio.CancelledError):
        answer.cancel()
    else:
        answer.set_exception(error)
