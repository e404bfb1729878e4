"""`make bench`: throughput and latency of the task-run RPCs against a real server process.

Prints one table. Figures vary with the machine's load: run it a few times (`--repeat N`
reports the median of N rounds) and compare ratios rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import grpc
import psycopg
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from bench.dataset import churn, load_task_runs
from bench.delivery import bench_delivery
from bench.measure import Row, ServerCpu, measure, percentile
from bench.overload import bench_health_under_maximal_requests
from bench.prefect import measure_prefect
from bench.server_process import bench_server
from bench.watch import bench_watch_latency
from bench.workers import bench_end_to_end, bench_idle_subscribers, bench_kill_to_redelivery
from devtools.scratch_database import libpq_url
from taskrun.v1 import filters_pb2, state_pb2, task_run_service_pb2, task_run_service_pb2_grpc

pb = task_run_service_pb2


async def bench_state_changes(stub: Any, *, lives: int, cpu: ServerCpu) -> list[Row]:
    """PENDING -> RUNNING -> COMPLETED for many runs; latency is per SetTaskRunState call."""
    rows: list[Row] = []
    running = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    completed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    for concurrency in (1, 32):
        total = lives if concurrency > 1 else max(lives // 4, 200)
        prefix = uuid.uuid4().hex[:8]
        # One batch: a thousand concurrent creates would meet the server's admission limit.
        created = await stub.BatchCreateTaskRuns(
            pb.BatchCreateTaskRunsRequest(
                requests=[
                    pb.CreateTaskRunRequest(task_key="bench.life", dynamic_key=f"{prefix}-{i}")
                    for i in range(total)
                ]
            )
        )
        runs = iter([c.task_run.id for c in created.responses])
        latencies: list[float] = []

        async def worker(pending: Iterator[str], latencies: list[float]) -> None:
            for run_id in pending:
                for proposal in (running, completed):
                    started = time.perf_counter()
                    answer = await stub.SetTaskRunState(
                        pb.SetTaskRunStateRequest(task_run_id=run_id, state=proposal)
                    )
                    latencies.append(time.perf_counter() - started)
                    assert answer.status == pb.SET_STATE_STATUS_ACCEPT, answer

        cpu_before = cpu.seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker(runs, latencies) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        rows.append(
            Row(
                name=f"SetTaskRunState c={concurrency} (per change)",
                ops_per_second=len(latencies) / elapsed,
                p50_ms=percentile(latencies, 0.5) * 1000,
                p99_ms=percentile(latencies, 0.99) * 1000,
                server_cpu_ms=(cpu.seconds() - cpu_before) * 1000 / len(latencies),
            )
        )
    return rows


async def bench_batch_creates(stub: Any, *, cpu: ServerCpu, batches: int = 20) -> list[Row]:
    """BatchCreateTaskRuns with 1,000 runs a call; throughput and CPU per run, latency per call."""
    rows: list[Row] = []
    for concurrency in (1, 4):

        async def create_batch(i: int, prefix: str = uuid.uuid4().hex[:8]) -> object:
            return await stub.BatchCreateTaskRuns(
                pb.BatchCreateTaskRunsRequest(
                    requests=[
                        pb.CreateTaskRunRequest(
                            task_key="bench.batch", dynamic_key=f"{prefix}-{i}-{j}", tags=["bench"]
                        )
                        for j in range(1000)
                    ]
                )
            )

        per_call = await measure(
            f"BatchCreateTaskRuns x1000 c={concurrency} (per run)",
            create_batch,
            total=batches,
            concurrency=concurrency,
            cpu=cpu,
        )
        per_call.ops_per_second *= 1000
        per_call.server_cpu_ms /= 1000
        rows.append(per_call)
    return rows


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


async def bench_workers(
    stub: Any, target: str, create: Callable[[int], Awaitable[object]]
) -> list[Row]:
    """Work handed to real worker processes; unary latency beside idle streams; health beside
    maximal requests."""
    rows: list[Row] = []
    for processes in (1, 4):
        rows += await bench_end_to_end(stub, target, processes, tasks=2000)
    rows.append(await bench_kill_to_redelivery(stub, target))

    async def creates(name: str) -> Row:
        return await measure(name, create, total=500, concurrency=1)

    rows.append(await creates("CreateTaskRun c=1, no idle streams"))
    rows.append(await bench_idle_subscribers(target, creates))
    rows.append(await bench_health_under_maximal_requests(stub, target))
    return rows


async def run_round(runs: int, creates: int, only: str, workers: int) -> list[Row]:
    rows: list[Row] = []
    with bench_server(workers=workers) as server:
        cpu = ServerCpu(server.pid)
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
            prefix = uuid.uuid4().hex[:8]

            async def create(i: int) -> object:
                return await stub.CreateTaskRun(
                    pb.CreateTaskRunRequest(
                        task_key="bench.create", dynamic_key=f"{prefix}-{i}", tags=["bench"]
                    )
                )

            await measure("warm-up", create, total=200, concurrency=8)
            if only == "workers":
                return await bench_workers(stub, server.target, create)
            for concurrency in (1, 32):
                prefix = uuid.uuid4().hex[:8]
                total = creates if concurrency > 1 else max(creates // 4, 500)
                rows.append(
                    await measure(
                        f"CreateTaskRun c={concurrency}",
                        create,
                        total=total,
                        concurrency=concurrency,
                        cpu=cpu,
                    )
                )

            rows += await bench_batch_creates(stub, cpu=cpu)
            rows += await bench_state_changes(stub, lives=creates // 4, cpu=cpu)
            rows += await bench_delivery(stub, backlog=2000)
            rows.append(await bench_watch_latency(stub))
            rows += await bench_workers(stub, server.target, create)

            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            start = now - timedelta(hours=24)
            with psycopg.connect(libpq_url(server.database_url), autocommit=True) as conn:
                load_task_runs(conn, runs, start=start, end=now)

            state_and_tag = filters_pb2.TaskRunFilter(
                state=filters_pb2.StateFilter(
                    type=filters_pb2.StateTypeFilter(any=[state_pb2.STATE_TYPE_COMPLETED])
                ),
                tags=filters_pb2.TagsFilter(all=["team-3"]),
            )

            async def read(_: int) -> object:
                return await stub.ReadTaskRuns(pb.ReadTaskRunsRequest(task_runs=state_and_tag))

            async def count(_: int) -> object:
                return await stub.CountTaskRuns(pb.CountTaskRunsRequest(task_runs=state_and_tag))

            hour = Duration(seconds=3600)
            team = filters_pb2.TaskRunFilter(tags=filters_pb2.TagsFilter(all=["team-3"]))

            async def history(_: int) -> object:
                return await stub.TaskRunHistory(
                    pb.TaskRunHistoryRequest(
                        history_start=ts(start), history_end=ts(now), history_interval=hour
                    )
                )

            async def history_of_team(_: int) -> object:
                return await stub.TaskRunHistory(
                    pb.TaskRunHistoryRequest(
                        history_start=ts(start),
                        history_end=ts(now),
                        history_interval=hour,
                        task_runs=team,
                    )
                )

            async def history_to_the_next_hour(_: int) -> object:
                """The dashboard's window: the 24 hours that end with the current one."""
                ahead = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + hour_delta
                return await stub.TaskRunHistory(
                    pb.TaskRunHistoryRequest(
                        history_start=ts(ahead - 24 * hour_delta),
                        history_end=ts(ahead),
                        history_interval=hour,
                    )
                )

            hour_delta = timedelta(hours=1)
            http = aiohttp.ClientSession()

            def page(path: str) -> Callable[[int], Awaitable[object]]:
                async def get(_: int) -> object:
                    async with http.get(server.dashboard + path) as answer:
                        assert answer.status == 200, answer.status
                        return await answer.read()

                return get

            reads = (
                ("ReadTaskRuns state+tag, limit 200", read),
                ("CountTaskRuns state+tag", count),
                ("TaskRunHistory 24 buckets", history),
                ("TaskRunHistory 24 buckets, tag filter", history_of_team),
                ("TaskRunHistory 24 buckets to the next hour", history_to_the_next_hour),
                ("Dashboard runs page, 50 runs and counts", page("/")),
                ("Dashboard history page, 24 h by hour", page("/history?since=24h&bucket=1h")),
            )
            label = f"{runs // 1000}k runs"
            for when in (f"{label}, loaded", f"{label}, +10k writes"):
                if when.endswith("writes"):
                    with psycopg.connect(libpq_url(server.database_url), autocommit=True) as conn:
                        churn(conn, 10_000)
                for name, call in reads:
                    await measure("warm-up", call, total=5, concurrency=1)
                    single = name.startswith("Dashboard") or name.endswith("next hour")
                    for concurrency in (1,) if single else (1, 32):
                        rows.append(
                            await measure(
                                f"{name} c={concurrency} ({when})",
                                call,
                                total=100 * (1 if concurrency == 1 else 2),
                                concurrency=concurrency,
                                cpu=cpu,
                            )
                        )
            await http.close()
    return rows


async def run_rounds(
    runs: int, creates: int, only: str, repeat: int, workers: int, prefect: str
) -> tuple[list[list[Row]], list[dict[str, float]]]:
    """Every round on one event loop: grpc.aio binds its completion queue to the first loop,
    and a second asyncio.run() floods stderr with "Event loop is closed". With `prefect` live,
    each taskrun round is followed by a Prefect round on the same machine."""
    rounds: list[list[Row]] = []
    references: list[dict[str, float]] = []
    for _ in range(repeat):
        rounds.append(await run_round(runs, creates, only, workers))
        if prefect == "live" and only == "all":
            try:
                references.append(await measure_prefect(runs, calls=PREFECT_CALLS))
            except Exception as error:  # no PyPI to install it from, say: say so, go on
                print(f"\nPrefect could not be measured ({error}); using the recorded figures")
                prefect, references = "recorded", []
    return rounds, references


PREFECT_CALLS = 100
"""Calls per Prefect row at concurrency 32 (half at concurrency 1): Prefect answers 5 to 80 a
second, so a round of it takes about a minute."""


def median_rows(rounds: list[list[Row]]) -> list[Row]:
    return [
        Row(
            name=group[0].name,
            ops_per_second=statistics.median(r.ops_per_second for r in group),
            p50_ms=statistics.median(r.p50_ms for r in group),
            p99_ms=statistics.median(r.p99_ms for r in group),
            server_cpu_ms=statistics.median(r.server_cpu_ms for r in group),
        )
        for group in zip(*rounds, strict=True)
    ]


PREFECT_OPS_PER_SECOND = {
    "CreateTaskRun c=1": 64.5,
    "CreateTaskRun c=32": 72.8,
    "SetTaskRunState c=1 (per change)": 69.7,
    "SetTaskRunState c=32 (per change)": 63.6,
    "ReadTaskRuns state+tag, limit 200 c=1": 14.0,
    "ReadTaskRuns state+tag, limit 200 c=32": 13.6,
    "CountTaskRuns state+tag c=1": 26.2,
    "CountTaskRuns state+tag c=32": 52.6,
    "TaskRunHistory 24 buckets c=1": 6.0,
    "TaskRunHistory 24 buckets c=32": 11.1,
    "TaskRunHistory 24 buckets, tag filter c=1": 11.4,
    "TaskRunHistory 24 buckets, tag filter c=32": 22.3,
    "Drain 1000 queued runs, 1 subscriber, settled in batches": 2265.0,
    "Submit->COMPLETED, 1 worker process(es) x 10": 7.1,
}
"""Prefect 3.9.1's REST server, same workloads and dataset, as recorded in issue #12 (one sitting
on the 2-core machine of that issue): the reference where it is not measured live
(`--prefect recorded`, and always for the drain and end to end, which Prefect's API cannot be
asked the same way). Batches compare with single creates (Prefect has none); the drain with
Prefect's in-memory, unsettled one; end to end with Prefect's submit -> body start at
concurrency 32, one worker of limit 10."""


def prefect_reference(name: str, live: dict[str, float]) -> tuple[float, bool]:
    """Prefect's ops/s for a row, and whether it was measured in this sitting."""
    if name.startswith("BatchCreateTaskRuns"):
        name = "CreateTaskRun c=32"
    for prefix, ops in PREFECT_OPS_PER_SECOND.items():
        if name == prefix or name.startswith(prefix + " ("):
            measured = live.get(name, live.get(prefix))
            return (ops, False) if measured is None else (measured, True)
    return math.nan, False


def median_reference(references: list[dict[str, float]]) -> dict[str, float]:
    """The median of each row over the Prefect rounds."""
    if not references:
        return {}
    return {name: statistics.median(r[name] for r in references) for name in references[0]}


def print_table(rows: list[Row], repeat: int, live: dict[str, float]) -> None:
    width = max(len(r.name) for r in rows)
    print(f"\ntaskrun benchmark (median of {repeat} round{'s' if repeat > 1 else ''})")
    header = (
        f"{'ops/s':>9}  {'p50 ms':>8}  {'p99 ms':>8}  {'server CPU ms/op':>16}  "
        f"{'Prefect ops/s':>13}  vs Prefect"
    )
    print(f"{'operation':<{width}}  {header}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 8}  {'-' * 8}  {'-' * 16}  {'-' * 13}  {'-' * 10}")
    for r in rows:
        ops = "-" if math.isnan(r.ops_per_second) else f"{r.ops_per_second:.1f}"
        cpu = "-" if math.isnan(r.server_cpu_ms) else f"{r.server_cpu_ms:.2f}"
        reference, measured = prefect_reference(r.name, live)
        ratio = r.ops_per_second / reference
        versus = "-" if math.isnan(ratio) else f"{ratio:.1f}x"
        prefect = "-" if math.isnan(reference) else f"{reference:.1f}{'' if measured else '*'}"
        line = (
            f"{ops:>9}  {r.p50_ms:>8.2f}  {r.p99_ms:>8.2f}  {cpu:>16}  {prefect:>13}  {versus:>10}"
        )
        print(f"{r.name:<{width}}  {line}")
    if live:
        print("\nPrefect ops/s: measured in this sitting (median of its rounds); * recorded in #12")
    else:
        print("\nPrefect ops/s: recorded in issue #12 on another day (--prefect recorded)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000, help="task runs to query over")
    parser.add_argument("--creates", type=int, default=4000, help="creates at concurrency 32")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument(
        "--only", choices=("all", "workers"), default="all", help="workers: end to end only"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="server processes (TASKRUN_WORKERS); default: one per core",
    )
    parser.add_argument(
        "--prefect",
        choices=("live", "recorded"),
        default="live",
        help=(
            "live: a real Prefect 3.9.1 server answers the same workloads after each round "
            "(installed into .conformance/ on first use); recorded: issue #12's figures"
        ),
    )
    args = parser.parse_args()
    rounds, references = asyncio.run(
        run_rounds(args.runs, args.creates, args.only, args.repeat, args.workers, args.prefect)
    )
    print(f"\nserver: {args.workers} process(es) (TASKRUN_WORKERS)")
    print_table(median_rows(rounds), args.repeat, median_reference(references))


if __name__ == "__main__":
    main()
