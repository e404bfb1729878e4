"""PaginateTaskRuns and CountTaskRuns: pages agree with counts, filters apply to both."""

from __future__ import annotations

import grpc

from taskrun.v1 import filters_pb2 as f
from taskrun.v1 import task_run_service_pb2 as pb
from tests.factories import TaskRunStub, create_run, expect_status


async def test_pages_cover_every_run_once(task_runs: TaskRunStub) -> None:
    created = [(await create_run(task_runs, name=f"r{i}")).id for i in range(7)]
    seen: list[str] = []
    for page in (1, 2, 3):
        response = await task_runs.PaginateTaskRuns(pb.PaginateTaskRunsRequest(limit=3, page=page))
        assert (response.count, response.limit, response.pages, response.page) == (7, 3, 3, page)
        seen += [r.id for r in response.results]
    assert seen == list(reversed(created))


async def test_page_zero_means_the_first(task_runs: TaskRunStub) -> None:
    await create_run(task_runs)
    response = await task_runs.PaginateTaskRuns(pb.PaginateTaskRunsRequest())
    assert (response.page, response.limit, response.count, response.pages) == (1, 200, 1, 1)


async def test_page_past_the_end_is_empty(task_runs: TaskRunStub) -> None:
    await create_run(task_runs)
    response = await task_runs.PaginateTaskRuns(pb.PaginateTaskRunsRequest(page=5))
    assert list(response.results) == [] and response.count == 1


async def test_paginate_applies_filters_to_results_and_count(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, tags=["keep"])
    await create_run(task_runs, tags=["keep"])
    await create_run(task_runs)
    keep = f.TaskRunFilter(tags=f.TagsFilter(all=["keep"]))
    response = await task_runs.PaginateTaskRuns(pb.PaginateTaskRunsRequest(task_runs=keep, limit=1))
    assert (response.count, response.pages, len(response.results)) == (2, 2, 1)


async def test_invalid_page_is_rejected(task_runs: TaskRunStub) -> None:
    await expect_status(
        task_runs.PaginateTaskRuns(pb.PaginateTaskRunsRequest(page=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page",
    )
    await expect_status(
        task_runs.PaginateTaskRuns(pb.PaginateTaskRunsRequest(limit=500)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "limit",
    )


async def test_count_applies_filters(task_runs: TaskRunStub) -> None:
    await create_run(task_runs, name="alpha")
    await create_run(task_runs, name="beta")
    total = await task_runs.CountTaskRuns(pb.CountTaskRunsRequest())
    alpha = await task_runs.CountTaskRuns(
        pb.CountTaskRunsRequest(task_runs=f.TaskRunFilter(name=f.NameFilter(like="alp")))
    )
    assert (total.count, alpha.count) == (2, 1)


async def test_count_rejects_invalid_filters(task_runs: TaskRunStub) -> None:
    bad = f.TaskRunFilter(flow_run_id=f.NullableIdFilter(any=["zzz"]))
    await expect_status(
        task_runs.CountTaskRuns(pb.CountTaskRunsRequest(task_runs=bad)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "task_runs.flow_run_id.any[0]",
    )


async def test_a_count_asked_again_sees_what_changed_and_another_tag_is_its_own(
    task_runs: TaskRunStub,
) -> None:
    """Counts are kept as statements per query: never their answers, never another query's."""

    async def count(tag: str) -> int:
        tagged = f.TaskRunFilter(tags=f.TagsFilter(all=[tag]))
        return (await task_runs.CountTaskRuns(pb.CountTaskRunsRequest(task_runs=tagged))).count

    await create_run(task_runs, tags=["x"])
    await create_run(task_runs, tags=["y"])
    assert [await count("x"), await count("y")] == [1, 1]
    await create_run(task_runs, tags=["x"])
    assert [await count("x"), await count("y")] == [2, 1]
