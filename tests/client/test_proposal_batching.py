"""The worker's ProposalBatcher against the real server: proposals made together travel in one
BatchSetTaskRunStates call, each answered (or refused) as a lone SetTaskRunState would be."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client import AsyncTaskRunClient, ClientConfig, TaskRunError
from taskrun_client.proposal_batching import MAX_BATCH_BYTES, ProposalBatcher
from taskrun_server.server import RunningServer

RUNNING = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)


class CountingClient(AsyncTaskRunClient):
    """The real client, counting the calls the batcher makes."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config)
        self.batches: list[int] = []
        self.singles = 0

    async def batch_set_task_run_states(
        self, proposals: Sequence[pb.SetTaskRunStateRequest]
    ) -> list[pb.BatchSetTaskRunStateResult]:
        self.batches.append(len(proposals))
        return await super().batch_set_task_run_states(proposals)

    async def set_task_run_state(  # type: ignore[override]
        self, task_run_id: str, state: state_pb2.StateCreate, **kwargs: str
    ) -> pb.SetTaskRunStateResponse:
        self.singles += 1
        return await super().set_task_run_state(task_run_id, state, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[CountingClient]:
    counting = CountingClient(ClientConfig(target=f"127.0.0.1:{fresh_server.port}"))
    async with counting:
        yield counting


async def runs(client: AsyncTaskRunClient, n: int) -> list[str]:
    return [(await client.create_task_run("batched", str(i))).task_run.id for i in range(n)]


async def test_a_proposal_made_alone_is_a_plain_call(client: CountingClient) -> None:
    (run_id,) = await runs(client, 1)
    answer = await ProposalBatcher(client).propose(run_id, RUNNING)
    assert answer.status == pb.SET_STATE_STATUS_ACCEPT
    assert (client.singles, client.batches) == (1, [])


async def test_proposals_made_together_share_calls_and_keep_their_answers(
    client: CountingClient,
) -> None:
    ids = await runs(client, 20)
    batcher = ProposalBatcher(client)
    answers = await asyncio.gather(*(batcher.propose(i, RUNNING) for i in ids))
    assert [a.task_run.id for a in answers] == ids
    assert all(a.status == pb.SET_STATE_STATUS_ACCEPT for a in answers)
    assert (client.singles, client.batches) == (0, [20])


async def test_one_proposals_error_is_its_own(client: CountingClient) -> None:
    ids = await runs(client, 3)
    missing = str(uuid.uuid4())
    batcher = ProposalBatcher(client)
    outcomes = await asyncio.gather(
        *(batcher.propose(i, RUNNING) for i in [ids[0], missing, *ids[1:]]),
        return_exceptions=True,
    )
    error = outcomes[1]
    assert isinstance(error, TaskRunError) and error.code is grpc.StatusCode.NOT_FOUND
    assert all(isinstance(o, pb.SetTaskRunStateResponse) for i, o in enumerate(outcomes) if i != 1)
    assert client.batches == [4]


async def test_proposals_too_large_to_share_a_call_go_alone(client: CountingClient) -> None:
    ids = await runs(client, 3)
    large = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    large.data.string_value = "x" * (MAX_BATCH_BYTES * 3 // 4)
    batcher = ProposalBatcher(client)
    answers = await asyncio.gather(*(batcher.propose(i, large) for i in ids))
    assert all(a.status == pb.SET_STATE_STATUS_ACCEPT for a in answers)
    assert (client.singles, client.batches) == (3, [])


async def test_proposals_made_one_after_another_go_one_by_one(client: CountingClient) -> None:
    """Nothing waits for company: a proposal made while no call is under way is sent at once."""
    (run_id,) = await runs(client, 1)
    batcher = ProposalBatcher(client)
    completed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    first = await batcher.propose(run_id, RUNNING)
    second = await batcher.propose(run_id, completed)
    assert [first.status, second.status] == [pb.SET_STATE_STATUS_ACCEPT] * 2
    assert first.state.state_details.transition_id != second.state.state_details.transition_id
    assert (client.singles, client.batches) == (2, [])


async def test_a_call_refused_for_one_malformed_proposal_is_sent_again_one_by_one(
    client: CountingClient,
) -> None:
    """The server refuses a whole batch for one malformed proposal (naming `requests[i]`): only
    that proposal may fail."""
    ids = await runs(client, 2)
    batcher = ProposalBatcher(client)
    outcomes = await asyncio.gather(
        *(batcher.propose(i, RUNNING) for i in [ids[0], "not-a-run-id", ids[1]]),
        return_exceptions=True,
    )
    error = outcomes[1]
    assert isinstance(error, TaskRunError) and error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.field == "task_run_id"
    assert [o.status for o in (outcomes[0], outcomes[2])] == [pb.SET_STATE_STATUS_ACCEPT] * 2  # type: ignore[union-attr]
    assert (client.batches, client.singles) == ([3], 3)
