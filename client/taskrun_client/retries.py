"""Which calls the client retries, and how it makes SetTaskRunState safe to retry."""

from __future__ import annotations

import uuid

from taskrun.v1 import task_run_service_pb2 as pb

RETRY_SAFE = frozenset(
    {
        "CreateTaskRun",  # idempotent by (flow_run_id, task_key, dynamic_key)
        "ReadTaskRun",
        "ReadTaskRuns",
        "PaginateTaskRuns",
        "CountTaskRuns",
        "TaskRunHistory",
        "UpdateTaskRun",  # setting the same name twice is the same as once
        "ReadTaskRunState",
        "ReadTaskRunStates",
        "SetTaskRunState",  # only with a transition_id, which the client always sets
        "HeartbeatTaskRuns",  # renewing a lease twice is renewing it
    }
)
"""Deletes are not retried: a retry after a lost answer would report NOT_FOUND for a delete
that succeeded."""


def with_transition_id(request: pb.SetTaskRunStateRequest) -> str:
    """Give the proposal a transition id (if it has none) and return it: a retry of an applied
    proposal is then rejected as a duplicate instead of being applied twice."""
    details = request.state.state_details
    if not details.transition_id:
        details.transition_id = str(uuid.uuid4())
    return details.transition_id


def settle_duplicate(response: pb.SetTaskRunStateResponse, transition_id: str) -> None:
    """A REJECT of our own transition means an earlier attempt was applied: report ACCEPT."""
    if (
        response.status == pb.SET_STATE_STATUS_REJECT
        and response.state.state_details.transition_id == transition_id
    ):
        response.status = pb.SET_STATE_STATUS_ACCEPT
