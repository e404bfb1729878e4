"""Submit 100 background tasks, run them on two workers, and watch them complete.

    python examples/background_tasks.py worker &     # twice: two workers
    python examples/background_tasks.py worker &
    python examples/background_tasks.py submit       # 100 tasks "square" with x = 0..99
    python examples/background_tasks.py watch        # until all 100 are COMPLETED

TASKRUN_TARGET (default 127.0.0.1:50051) says where the server is.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from google.protobuf import struct_pb2

from taskrun.v1 import filters_pb2, state_pb2
from taskrun_client import ClientConfig, TaskRunClient, TaskWorker

CONFIG = ClientConfig(target=os.environ.get("TASKRUN_TARGET", "127.0.0.1:50051"))
KEY = "square"
BATCH_TAG = "example"


def submit(count: int = 100) -> None:
    batch = uuid.uuid4().hex[:8]
    with TaskRunClient(CONFIG) as client:
        for x in range(count):
            parameters = struct_pb2.Struct()
            parameters.update({"x": x})
            client.create_task_run(
                KEY,
                f"{batch}-{x}",
                tags=[BATCH_TAG],
                parameters=parameters,
                state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED),
            )
    print(f"submitted {count} tasks")


def work() -> None:
    worker = TaskWorker(CONFIG, concurrency=4, client_id=f"example-{os.getpid()}")

    @worker.task(KEY)
    def square(x: float) -> float:
        time.sleep(0.05)  # some work: sync functions run on threads, `concurrency` at once
        return x * x

    print(f"worker {os.getpid()} waiting for {KEY!r} tasks (Ctrl-C to stop)")
    worker.run()
    print(f"worker {os.getpid()}: {worker.completed} completed, {worker.failed} failed")


def watch() -> None:
    tagged = filters_pb2.TaskRunFilter(tags=filters_pb2.TagsFilter(all=[BATCH_TAG]))
    with TaskRunClient(CONFIG) as client:
        while True:
            total = client.count_task_runs(task_runs=tagged)
            done = client.count_task_runs(
                task_runs=filters_pb2.TaskRunFilter(
                    tags=filters_pb2.TagsFilter(all=[BATCH_TAG]),
                    state=filters_pb2.StateFilter(
                        type=filters_pb2.StateTypeFilter(any=[state_pb2.STATE_TYPE_COMPLETED])
                    ),
                )
            )
            print(f"{done}/{total} completed")
            if total and done == total:
                return
            time.sleep(0.5)


if __name__ == "__main__":
    commands = {"submit": submit, "worker": work, "watch": watch}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]]()
