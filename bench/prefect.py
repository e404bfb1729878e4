"""The reference column, measured live: the same workloads through a real Prefect 3.9.1 server
(REST, one process, its background services off) on this machine, in the same sitting as
taskrun's rounds, on the same dataset loaded the same way (`bench/dataset.py`).

Figures recorded on another day or another machine cannot be compared: this machine's speed
varies from one session to the next by a factor of two (pgbench's single-row INSERT gave 4,129/s
on the day of issue #12 and 2,634/s on a later one). The two rows Prefect cannot be asked the
same question for (a settled drain, a worker end to end) keep the recorded figures.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg

from bench.dataset import churn, load_task_runs
from bench.measure import measure
from bench.server_process import admin_database_url
from conformance.prefect_server import prefect_server

STATE_AND_TAG = {
    "state": {"type": {"any_": ["COMPLETED"]}},
    "tags": {"all_": ["team-3"]},
}
TEAM = {"tags": {"all_": ["team-3"]}}


async def _throughput(
    call: Callable[[int], Awaitable[object]], *, total: int, concurrency: int
) -> float:
    """Calls per second of `total` calls from `concurrency` loops (the bench's own loop)."""
    return (await measure("prefect", call, total=total, concurrency=concurrency)).ops_per_second


class _Prefect:
    """Prefect's task-run REST API, the calls the bench makes."""

    def __init__(self, session: aiohttp.ClientSession, api: str) -> None:
        self._session = session
        self._api = api

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self._session.post(self._api + path, json=body) as answer:
            if answer.status >= 300:
                raise RuntimeError(f"Prefect {path}: HTTP {answer.status} {await answer.text()}")
            return await answer.json()

    async def create(self, key: str, state: str | None = None) -> str:
        body: dict[str, Any] = {"task_key": "bench.create", "dynamic_key": key, "tags": ["bench"]}
        if state is not None:
            body["state"] = {"type": state}
        run = await self.post("/task_runs/", body)
        return str(run["id"])

    async def set_state(self, run_id: str, state: str) -> None:
        answer = await self.post(f"/task_runs/{run_id}/set_state", {"state": {"type": state}})
        assert answer["status"] == "ACCEPT", answer


def _calls(calls: int, concurrency: int) -> int:
    return calls if concurrency > 1 else calls // 2


async def measure_prefect(runs: int, calls: int) -> dict[str, float]:
    """Prefect's ops/s per bench row name (`bench/__main__.py`'s names), measured now: `calls`
    per row at concurrency 32, half as many at concurrency 1."""
    admin, embedded = admin_database_url()
    found: dict[str, float] = {}
    with prefect_server(admin, database="taskrun_bench_prefect") as api:
        # Uvicorn closes a connection idle for 5 s: close ours first (the load takes longer).
        connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            prefect = _Prefect(session, api)
            prefix = uuid.uuid4().hex[:8]
            await _throughput(
                lambda i: prefect.create(f"warm-{prefix}-{i}"), total=20, concurrency=4
            )
            for concurrency in (1, 32):

                def create(i: int, c: int = concurrency) -> Awaitable[str]:
                    return prefect.create(f"{prefix}-{c}-{i}")

                found[f"CreateTaskRun c={concurrency}"] = await _throughput(
                    create, total=_calls(calls, concurrency), concurrency=concurrency
                )
            for concurrency in (1, 32):
                lives = _calls(calls, concurrency) // 2
                ids = [
                    await prefect.create(f"life-{prefix}-{concurrency}-{i}", "PENDING")
                    for i in range(lives)
                ]

                async def life(i: int, ids: list[str] = ids) -> None:
                    await prefect.set_state(ids[i], "RUNNING")
                    await prefect.set_state(ids[i], "COMPLETED")

                per_life = await _throughput(life, total=lives, concurrency=concurrency)
                found[f"SetTaskRunState c={concurrency} (per change)"] = 2 * per_life

            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            start = now - timedelta(hours=24)
            database = admin.rsplit("/", 1)[0] + "/taskrun_bench_prefect"
            with psycopg.connect(database, autocommit=True) as conn:
                load_task_runs(conn, runs, start=start, end=now, schema="prefect")
                churn(conn, 10_000)
            window = {
                "history_start": start.isoformat(),
                "history_end": now.isoformat(),
                "history_interval_seconds": 3600,
            }
            reads: dict[str, Callable[[int], Awaitable[object]]] = {
                "ReadTaskRuns state+tag, limit 200": lambda _: prefect.post(
                    "/task_runs/filter", {"task_runs": STATE_AND_TAG, "limit": 200}
                ),
                "CountTaskRuns state+tag": lambda _: prefect.post(
                    "/task_runs/count", {"task_runs": STATE_AND_TAG}
                ),
                "TaskRunHistory 24 buckets": lambda _: prefect.post("/task_runs/history", window),
                "TaskRunHistory 24 buckets, tag filter": lambda _: prefect.post(
                    "/task_runs/history", {**window, "task_runs": TEAM}
                ),
            }
            for name, call in reads.items():
                await _throughput(call, total=3, concurrency=1)
                for concurrency in (1, 32):
                    found[f"{name} c={concurrency}"] = await _throughput(
                        call, total=_calls(calls, concurrency), concurrency=concurrency
                    )
    del embedded  # an embedded Postgres lives as long as this reference
    return found
