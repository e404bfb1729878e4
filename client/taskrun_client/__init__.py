"""taskrun client library: typed async and sync clients over the generated `taskrun.v1` stubs.

    from taskrun_client import TaskRunClient, ClientConfig
    from taskrun.v1 import state_pb2

    with TaskRunClient(ClientConfig(target="127.0.0.1:50051")) as client:
        run = client.create_task_run("hello", "0").task_run
        client.set_task_run_state(run.id, state_pb2.STATE_TYPE_RUNNING)

Errors raise TaskRunError (gRPC status, and the request field the server named). Calls that
are safe to repeat are retried on UNAVAILABLE with backoff; see `taskrun_client.retries`.
"""

from taskrun_client import filters
from taskrun_client.async_client import AsyncTaskRunClient
from taskrun_client.config import ClientConfig, RetryPolicy
from taskrun_client.errors import FieldViolation, TaskRunError
from taskrun_client.sync_client import TaskRunClient
from taskrun_client.task_execution import current_task_run
from taskrun_client.worker import TaskWorker

__all__ = [
    "AsyncTaskRunClient",
    "ClientConfig",
    "FieldViolation",
    "RetryPolicy",
    "TaskRunClient",
    "TaskRunError",
    "TaskWorker",
    "current_task_run",
    "filters",
]
