"""`python -m bench.idle_streams TARGET N`: hold N subscriber streams open on keys with nothing
due until stdin closes. A process of its own, so that the benchmark measuring unary calls beside
the streams measures the server's cost of them, not its own (bench/workers.py)."""

from __future__ import annotations

import asyncio
import sys

import grpc

from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc

STREAMS_PER_CHANNEL = 50


async def hold(target: str, streams: int) -> None:
    channels = [
        grpc.aio.insecure_channel(target) for _ in range(streams // STREAMS_PER_CHANNEL + 1)
    ]
    calls = [
        task_run_service_pb2_grpc.TaskRunServiceStub(
            channels[i // STREAMS_PER_CHANNEL]
        ).SubscribeScheduledTasks(
            pb.SubscribeScheduledTasksRequest(
                task_keys=[f"bench.idle.{i % 20}"], client_id="idle", prefetch=1
            )
        )
        for i in range(streams)
    ]
    print("holding", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    for call in calls:
        call.cancel()
    for channel in channels:
        await channel.close()


if __name__ == "__main__":
    asyncio.run(hold(sys.argv[1], int(sys.argv[2])))
