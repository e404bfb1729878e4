"""Which calls the client retries, how (gRPC's retry policy, as service config), and how it
makes SetTaskRunState safe to retry."""

from __future__ import annotations

import json
import uuid

from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.config import ClientConfig

SERVICES = (
    "taskrun.v1.TaskRunService",
    "taskrun.v1.ConcurrencyLimitService",
    "taskrun.v1.FlowService",
    "taskrun.v1.DeploymentService",
    "taskrun.v1.FlowRunService",
    "taskrun.v1.LogService",
)

RETRY_SAFE = frozenset(
    {
        "CreateTaskRun",  # idempotent by (flow_run_id, task_key, dynamic_key)
        "BatchCreateTaskRuns",  # idempotent the same way, item by item
        "ReadTaskRun",
        "ReadTaskRuns",
        "PaginateTaskRuns",
        "CountTaskRuns",
        "TaskRunHistory",
        "UpdateTaskRun",  # setting the same name twice is the same as once
        "ReadTaskRunState",
        "ReadTaskRunStates",
        "SetTaskRunState",  # only with a transition_id, which the client always sets
        "BatchSetTaskRunStates",  # the same, proposal by proposal
        "HeartbeatTaskRuns",  # renewing a lease twice is renewing it
    }
)
"""Deletes are not retried: a retry after a lost answer would report NOT_FOUND for a delete
that succeeded. Nor are log writes: a retry could write twice."""


def service_config(client: ClientConfig) -> str:
    """The channel's service config: every method waits for a connection within its deadline
    (unless `wait_for_ready` is off); the retry-safe ones are retried on UNAVAILABLE and
    CANCELLED by gRPC itself, which also retries transparently what never reached the
    server."""
    policy, ready = client.retry, client.wait_for_ready

    def seconds(value: float) -> str:
        return f"{value:.3f}s"

    retried: dict[str, object] = {
        "name": [
            {"service": "taskrun.v1.TaskRunService", "method": method}
            for method in sorted(RETRY_SAFE)
        ],
        "waitForReady": ready,
    }
    if policy.max_attempts > 1:  # gRPC refuses a retry policy of one attempt
        retried["retryPolicy"] = {
            "maxAttempts": policy.max_attempts,
            "initialBackoff": seconds(policy.initial_backoff),
            "maxBackoff": seconds(policy.max_backoff),
            "backoffMultiplier": policy.multiplier,
            # CANCELLED too: a stopping server cancels the calls it had queued but not
            # started. These methods are safe to repeat, and gRPC never retries a call the
            # client cancelled itself.
            "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
        }
    config = {
        "methodConfig": [
            {"name": [{"service": service} for service in SERVICES], "waitForReady": ready},
            retried,
        ]
    }
    return json.dumps(config)


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


def with_transition_ids(request: pb.BatchSetTaskRunStatesRequest) -> list[str]:
    """`with_transition_id` for every proposal of a batch."""
    return [with_transition_id(item) for item in request.requests]


def settle_duplicates(
    response: pb.BatchSetTaskRunStatesResponse, transition_ids: list[str]
) -> None:
    """`settle_duplicate` for every answered proposal of a batch."""
    for result, transition_id in zip(response.results, transition_ids, strict=True):
        if result.HasField("response"):
            settle_duplicate(result.response, transition_id)
