"""Work handed to a worker always finishes: real worker processes against a real server process,
killed with SIGKILL, frozen with SIGSTOP and resumed, while the reaper takes their runs back and
fencing keeps a resumed worker from overwriting what happened since."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun_client import AsyncTaskRunClient, ClientConfig, filters
from taskrun_server.server import RunningServer
from tests.factories import now, scheduled
from tests.processes import server_process

T = state_pb2
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def target(fresh_server: RunningServer, database_url: str) -> Iterator[str]:
    """A server process on the emptied database, with a quick reaper and delivery timer."""
    with server_process(
        database_url, reaper_interval_seconds="0.2", delivery_poll_seconds="0.2", lease_seconds="2"
    ) as address:
        yield address


@pytest.fixture
async def client(target: str) -> AsyncIterator[AsyncTaskRunClient]:
    async with AsyncTaskRunClient(ClientConfig(target=target)) as c:
        yield c


class WorkerProcess:
    """A `tests.worker_process` process and its journal of started and ended runs."""

    def __init__(self, target: str, journal: Path, concurrency: int) -> None:
        self.journal = journal
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process", target, str(journal), str(concurrency)],
            cwd=ROOT,
        )

    def started(self) -> list[str]:
        if not self.journal.exists():
            return []
        return [
            line.split()[1] for line in self.journal.read_text().splitlines() if "start" in line
        ]

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def workers(
    target: str, tmp_path: Path, count: int, concurrency: int, name: str = "worker"
) -> Iterator[list[WorkerProcess]]:
    started = [
        WorkerProcess(target, tmp_path / f"{name}-{i}.journal", concurrency) for i in range(count)
    ]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def nap_policy(**fields: float) -> task_run_pb2.TaskRunPolicy:
    return task_run_pb2.TaskRunPolicy(heartbeat_timeout_seconds=1.5, **fields)  # type: ignore[arg-type]


async def submit_nap(client: AsyncTaskRunClient, key: str, seconds: float, **policy: float) -> str:
    parameters = struct_pb2.Struct()
    parameters.update({"seconds": seconds})
    created = await client.create_task_run(
        "nap", key, state=scheduled(now()), parameters=parameters,
        empirical_policy=nap_policy(**policy),
    )  # fmt: skip
    return created.task_run.id


Check = Callable[[], Awaitable[bool]]


async def until(check: Check, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def has_started(worker: WorkerProcess, run_id: str) -> Check:
    async def check() -> bool:
        return run_id in worker.started()

    return check


def in_state(client: AsyncTaskRunClient, run_id: str, kind: int) -> Check:
    async def check() -> bool:
        return (await client.read_task_run(run_id)).state_type == kind

    return check


def completed_at_least(client: AsyncTaskRunClient, threshold: int) -> Check:
    completed = filters.task_runs(state=["COMPLETED"])

    async def check() -> bool:
        return await client.count_task_runs(task_runs=completed) >= threshold

    return check


async def test_a_killed_worker_s_run_is_retried_and_completed_by_another(
    client: AsyncTaskRunClient, target: str, tmp_path: Path
) -> None:
    run_id = await submit_nap(client, "killed", 3.0, retries=1)
    with workers(target, tmp_path, 1, 1, "first") as (first,):
        await until(has_started(first, run_id), 30)
        first.signal(signal.SIGKILL)
    with workers(target, tmp_path, 1, 1, "second") as (second,):
        await until(in_state(client, run_id, T.STATE_TYPE_COMPLETED), 60)
        assert run_id in second.started()
    run = await client.read_task_run(run_id)
    assert run.run_count == 2
    names = [s.name for s in await client.read_task_run_states(run_id)]
    assert names[-3:] == ["AwaitingRetry", "Retrying", "Completed"]


async def test_a_killed_worker_s_run_without_retries_ends_crashed(
    client: AsyncTaskRunClient, target: str, tmp_path: Path
) -> None:
    run_id = await submit_nap(client, "crashed", 30.0)
    with workers(target, tmp_path, 1, 1) as (worker,):
        await until(has_started(worker, run_id), 30)
        worker.signal(signal.SIGKILL)
        await until(in_state(client, run_id, T.STATE_TYPE_CRASHED), 30)
    run = await client.read_task_run(run_id)
    assert "stopped heartbeating" in run.state.message


TASKS = 1000


async def test_a_thousand_tasks_finish_through_kills_and_a_freeze(
    client: AsyncTaskRunClient, target: str, tmp_path: Path, fresh_server: RunningServer
) -> None:
    """Four workers; two are SIGKILLed and one frozen (SIGSTOP, longer than the heartbeat
    timeout) then resumed, at moments drawn by a seeded generator. Every run ends COMPLETED,
    exactly once, and nothing the frozen worker proposed late came after it."""
    rng = random.Random(9)
    kill_first, freeze, kill_second = sorted(rng.sample(range(100, 700), 3))
    with workers(target, tmp_path, 4, 8) as pool:
        for start in range(0, TASKS, 100):
            await asyncio.gather(
                *(submit_nap(client, str(i), 0.02, retries=20) for i in range(start, start + 100))
            )

        for threshold, worker, sig in (
            (kill_first, pool[0], signal.SIGKILL),
            (freeze, pool[1], signal.SIGSTOP),
            (kill_second, pool[2], signal.SIGKILL),
        ):
            await until(completed_at_least(client, threshold), 120)
            worker.signal(sig)
        await asyncio.sleep(3.0)  # the frozen worker's leases lapse and its runs move on
        pool[1].signal(signal.SIGCONT)
        await until(completed_at_least(client, TASKS), 180)
        frozen_started = set(pool[1].started())
    async with fresh_server.engine.connect() as conn:
        unfinished = (
            await conn.execute(
                text("SELECT count(*) FROM task_run WHERE state_type <> 'COMPLETED'")
            )
        ).scalar_one()
        twice = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT task_run_id FROM task_run_state "
                    "WHERE type = 'COMPLETED' GROUP BY task_run_id HAVING count(*) > 1) AS t"
                )
            )
        ).scalar_one()
        after_completion = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM task_run_state AS later JOIN task_run_state AS done "
                    "ON later.task_run_id = done.task_run_id AND done.type = 'COMPLETED' "
                    "AND later.timestamp > done.timestamp"
                )
            )
        ).scalar_one()
        retried = (
            await conn.execute(text("SELECT count(*) FROM task_run WHERE run_count > 1"))
        ).scalar_one()
    assert (unfinished, twice, after_completion) == (0, 0, 0)
    assert frozen_started, "the frozen worker had taken work before it was frozen"
    assert retried > 0, "the kills and the freeze interrupted some runs"
