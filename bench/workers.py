"""End-to-end benchmarks through real TaskWorker processes, and delivery beside idle streams.

- Submit -> COMPLETED throughput: tasks submitted at concurrency 32 while 1 or 4 worker
  processes (concurrency 10 each) run a no-op body; ops/s is tasks over the time from the first
  submission to the last COMPLETED.
- Submit -> body start at light load (20 tasks/s): p50 and p99 of the lag.
- Kill -> redelivery: a worker running a long task is SIGKILLed; the time until the task's body
  starts again on another worker (heartbeat timeout plus reaper period; 2 s timeout here).
- CreateTaskRun c=1 beside 500 idle subscriber streams, to set beside the same without them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

from bench.measure import Row, percentile
from taskrun.v1 import filters_pb2, state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
COMPLETED = filters_pb2.TaskRunFilter(
    state=filters_pb2.StateFilter(
        type=filters_pb2.StateTypeFilter(any=[state_pb2.STATE_TYPE_COMPLETED])
    )
)


def spawn_worker(target: str, journal: Path, concurrency: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.worker_process", target, str(journal), str(concurrency)],
        cwd=ROOT,
    )


async def poll(check: Callable[[], Awaitable[bool] | bool], within: float) -> bool:
    """Check every 20 ms until `check` holds or `within` seconds pass; whether it held."""
    for _ in range(int(within / 0.02)):
        outcome = check()
        if await outcome if not isinstance(outcome, bool) else outcome:
            return True
        await asyncio.sleep(0.02)
    return False


@contextmanager
def worker_processes(target: str, count: int, concurrency: int) -> Iterator[list[Path]]:
    """`count` worker processes; yields their journals."""
    folder = Path(tempfile.mkdtemp(prefix="taskrun-bench-workers-"))
    journals = [folder / f"worker-{i}.journal" for i in range(count)]
    processes = [spawn_worker(target, j, concurrency) for j in journals]
    try:
        time.sleep(1.0)  # subscribed and idle
        yield journals
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _lags(journals: list[Path]) -> list[float]:
    return [
        float(line.split()[1])
        for journal in journals
        if journal.exists()
        for line in journal.read_text().splitlines()
        if line.startswith("lag ")
    ]


def _noop(key: str) -> pb.CreateTaskRunRequest:
    parameters = struct_pb2.Struct()
    parameters.update({"submitted": time.time()})
    return pb.CreateTaskRunRequest(
        task_key="bench.noop",
        dynamic_key=key,
        tags=["bench.e2e"],
        parameters=parameters,
        state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED),
    )


async def _completed(stub: Any) -> int:
    response = await stub.CountTaskRuns(pb.CountTaskRunsRequest(task_runs=COMPLETED))
    return int(response.count)


async def bench_end_to_end(stub: Any, target: str, processes: int, tasks: int) -> list[Row]:
    rows: list[Row] = []
    with worker_processes(target, processes, concurrency=10) as journals:
        before = await _completed(stub)
        prefix = uuid.uuid4().hex[:8]
        keys = iter(range(tasks))

        async def submit() -> None:
            for i in keys:
                await stub.CreateTaskRun(_noop(f"{prefix}-{i}"))

        started = time.perf_counter()
        await asyncio.gather(*(submit() for _ in range(32)))

        async def all_completed() -> bool:
            return await _completed(stub) - before >= tasks

        await poll(all_completed, 300)
        elapsed = time.perf_counter() - started
        lags = _lags(journals)
        rows.append(
            Row(
                name=f"Submit->COMPLETED, {processes} worker process(es) x 10",
                ops_per_second=tasks / elapsed,
                p50_ms=percentile(lags, 0.5) * 1000,
                p99_ms=percentile(lags, 0.99) * 1000,
            )
        )
        for journal in journals:
            journal.write_text("")
        prefix = uuid.uuid4().hex[:8]
        rate = 20.0
        for i in range(200):
            await stub.CreateTaskRun(_noop(f"{prefix}-light-{i}"))
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(1.0)
        lags = _lags(journals)
        rows.append(
            Row(
                name=f"Submit->body start, {processes} worker process(es), {rate:.0f} tasks/s",
                ops_per_second=rate,
                p50_ms=percentile(lags, 0.5) * 1000,
                p99_ms=percentile(lags, 0.99) * 1000,
            )
        )
    return rows


def _starts(journal: Path, run_id: str) -> list[float]:
    if not journal.exists():
        return []
    return [
        float(line.split()[2])
        for line in journal.read_text().splitlines()
        if line.startswith(f"start {run_id}")
    ]


async def bench_kill_to_redelivery(stub: Any, target: str, trials: int = 3) -> Row:
    """SIGKILL the worker running a task; time until its body starts on the other worker."""
    gaps = [gap for trial in range(trials) if (gap := await _kill_once(stub, target)) is not None]
    return Row(
        name="Kill->redelivery, 2 s heartbeat timeout (p99: worst)",
        ops_per_second=float("nan"),
        p50_ms=statistics.median(gaps) * 1000 if gaps else float("nan"),
        p99_ms=max(gaps) * 1000 if gaps else float("nan"),
    )


async def _kill_once(stub: Any, target: str) -> float | None:
    folder = Path(tempfile.mkdtemp(prefix="taskrun-bench-kill-"))
    first, second = folder / "first.journal", folder / "second.journal"
    victim = spawn_worker(target, first, 1)
    parameters = struct_pb2.Struct()
    parameters.update({"seconds": 30})
    created = await stub.CreateTaskRun(
        pb.CreateTaskRunRequest(
            task_key="bench.nap",
            dynamic_key=uuid.uuid4().hex,
            parameters=parameters,
            empirical_policy=task_run_pb2.TaskRunPolicy(retries=1, heartbeat_timeout_seconds=2),
            state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED),
        )
    )
    run_id = created.task_run.id
    await poll(lambda: bool(_starts(first, run_id)), 60)
    survivor = spawn_worker(target, second, 1)
    await asyncio.sleep(1.0)  # the survivor is subscribed
    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    await poll(lambda: bool(_starts(second, run_id)), 60)
    restarts = _starts(second, run_id)
    survivor.kill()  # its 30 s task would hold up a graceful stop
    survivor.wait(timeout=30)
    return restarts[0] - killed_at if restarts else None


async def bench_idle_subscribers(target: str, measure_creates: Any, streams: int = 500) -> Row:
    """CreateTaskRun c=1 while `streams` subscriber streams, held by another process
    (`bench/idle_streams.py`), wait on keys with nothing due."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.idle_streams",
        target,
        str(streams),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert (await holder.stdout.readline()).strip() == b"holding"
        await asyncio.sleep(3.0)  # every stream has made its first claim and sleeps
        row: Row = await measure_creates(f"CreateTaskRun c=1 beside {streams} idle streams")
        return row
    finally:
        holder.stdin.close()  # the holder cancels its streams and exits
        try:
            await asyncio.wait_for(holder.wait(), 30)
        except TimeoutError:
            holder.kill()
            await holder.wait()
