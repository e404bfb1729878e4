"""WatchTaskRuns latency: from a state proposal sent to its change arriving at a watcher."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.measure import Row, percentile
from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb

RUNNING = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)


async def bench_watch_latency(stub: Any, changes: int = 300) -> Row:
    """One watcher on `changes` runs; each run moved to RUNNING in turn, 20 ms after the
    previous change arrived (a watch reads at most every 10 ms: `WatchSettings.pace_seconds`).
    The latency runs from sending the proposal (an upper bound on its commit) to the watcher
    receiving the change."""
    prefix = uuid.uuid4().hex[:8]
    created = await stub.BatchCreateTaskRuns(
        pb.BatchCreateTaskRunsRequest(
            requests=[
                pb.CreateTaskRunRequest(task_key="bench.watch", dynamic_key=f"{prefix}-{i}")
                for i in range(changes)
            ]
        )
    )
    ids = [r.task_run.id for r in created.responses]
    arrived: dict[str, asyncio.Future[float]] = {}
    watch = stub.WatchTaskRuns(pb.WatchTaskRunsRequest(task_run_ids=ids))
    seen = 0
    all_seen = asyncio.Event()

    async def read() -> None:
        nonlocal seen
        async for message in watch:
            seen += 1
            if seen == changes:
                all_seen.set()
            run = message.task_run
            waiting = arrived.get(run.id)
            if run.state_type == state_pb2.STATE_TYPE_RUNNING and waiting and not waiting.done():
                waiting.set_result(time.perf_counter())

    reader = asyncio.ensure_future(read())
    await asyncio.wait_for(all_seen.wait(), 30)  # the runs as they are, first
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    try:
        for run_id in ids:
            arrived[run_id] = loop.create_future()
            sent = time.perf_counter()
            await stub.SetTaskRunState(pb.SetTaskRunStateRequest(task_run_id=run_id, state=RUNNING))
            latencies.append(await asyncio.wait_for(arrived[run_id], 10) - sent)
            await asyncio.sleep(0.02)
    finally:
        watch.cancel()
        reader.cancel()
    return Row(
        name="WatchTaskRuns: proposal sent -> change at the watcher, 20 ms apart",
        ops_per_second=len(latencies) / sum(latencies),
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )
