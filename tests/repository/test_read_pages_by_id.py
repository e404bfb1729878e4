"""Reads in id order filtered on states and tags find their page's ids first (in the id index
that carries those columns), then read only the page's runs: the same runs, in the same order,
page after page, as the filter applied to every run."""

from __future__ import annotations

import json
import random
import uuid

from sqlalchemy import Integer, bindparam, text

from taskrun.v1 import filters_pb2 as f
from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.api.filter_codec import parse_query
from taskrun_server.repository.task_runs import _read_page_by_id
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub

KINDS: list[state_pb2.StateType.ValueType] = [
    state_pb2.STATE_TYPE_COMPLETED,
    state_pb2.STATE_TYPE_FAILED,
    state_pb2.STATE_TYPE_PENDING,
]
COMPLETED_WITH_TAG = f.TaskRunFilter(
    state=f.StateFilter(type=f.StateTypeFilter(any=[state_pb2.STATE_TYPE_COMPLETED])),
    tags=f.TagsFilter(all=["team-a"]),
)


async def _mixed_runs(
    task_runs: TaskRunStub, count: int
) -> list[tuple[str, state_pb2.StateType.ValueType, list[str]]]:
    """Runs in three states, half of them tagged team-a, created in random id order."""
    chosen = random.Random(7)
    runs = [
        (
            str(uuid.UUID(int=chosen.getrandbits(128), version=4)),
            chosen.choice(KINDS),
            ["team-a"] if chosen.random() < 0.5 else ["team-b"],
        )
        for _ in range(count)
    ]
    await task_runs.BatchCreateTaskRuns(
        pb.BatchCreateTaskRunsRequest(
            requests=[
                pb.CreateTaskRunRequest(
                    id=run_id,
                    task_key="pages",
                    dynamic_key=run_id,
                    tags=tags,
                    state=state_pb2.StateCreate(type=kind),
                )
                for run_id, kind, tags in runs
            ]
        )
    )
    return runs


async def test_pages_in_id_order_hold_exactly_the_matching_runs(task_runs: TaskRunStub) -> None:
    runs = await _mixed_runs(task_runs, 120)
    expected = sorted(
        (run_id for run_id, kind, tags in runs if kind == KINDS[0] and "team-a" in tags),
        key=uuid.UUID,
        reverse=True,
    )
    pages = []
    for offset in range(0, len(expected) + 7, 7):
        answer = await task_runs.ReadTaskRuns(
            pb.ReadTaskRunsRequest(task_runs=COMPLETED_WITH_TAG, limit=7, offset=offset)
        )
        pages += [run.id for run in answer.task_runs]
    assert len(expected) > 14
    assert pages == expected


async def test_the_page_is_found_in_the_id_index_without_visiting_the_runs(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    """Once the runs' pages are all-visible (as autovacuum leaves them), the ids come from an
    index-only scan of the id index. Sequential and bitmap scans are off, so that a small
    table gets the plan a large one would."""
    await _mixed_runs(task_runs, 200)
    query = parse_query(pb.ReadTaskRunsRequest(task_runs=COMPLETED_WITH_TAG))
    page = _read_page_by_id(
        query, bindparam("limit", 50, Integer), bindparam("offset", 0, Integer), bulky=False
    )
    sql = str(
        page.compile(dialect=fresh_server.engine.dialect, compile_kwargs={"literal_binds": True})
    )
    async with fresh_server.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM (ANALYZE) task_run"))
    async with fresh_server.engine.begin() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        await conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        plan = (await conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))).scalar_one()
    scans = _scans(plan if isinstance(plan, list) else json.loads(plan))
    assert ("Index Only Scan", "ix_task_run__id_filtered") in scans, scans


def _scans(plan: list[dict[str, object]]) -> list[tuple[object, object]]:
    found: list[tuple[object, object]] = []

    def walk(node: dict[str, object]) -> None:
        found.append((node.get("Node Type"), node.get("Index Name")))
        for child in node.get("Plans", []):  # type: ignore[attr-defined]
            walk(child)

    walk(plan[0]["Plan"])  # type: ignore[arg-type]
    return found
