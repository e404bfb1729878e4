"""TaskRunHistory: buckets by expected start time, summaries per state, and its bounds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration

from taskrun.v1 import filters_pb2 as f
from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.domain.history import LAST_INSTANT, MAX_SUMMED_SECONDS
from tests.factories import TaskRunStub, at, create_run, expect_status, hours, now, scheduled, ts


def seconds(n: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=n))
    return d


async def test_runs_fall_in_the_bucket_of_their_expected_start(task_runs: TaskRunStub) -> None:
    start = now().replace(microsecond=0) + hours(10)
    await create_run(task_runs, state=scheduled(start + timedelta(minutes=5)))
    await create_run(task_runs, state=scheduled(start + timedelta(minutes=10)))
    await create_run(task_runs, state=scheduled(start + hours(2)))
    await create_run(task_runs, state=scheduled(start + hours(5)))  # outside the window
    response = await task_runs.TaskRunHistory(
        pb.TaskRunHistoryRequest(
            history_start=ts(start),
            history_end=ts(start + hours(3)),
            history_interval=seconds(3600),
        )
    )
    assert [at(i.interval_start) for i in response.intervals] == [
        start,
        start + hours(1),
        start + hours(2),
    ]
    assert [at(i.interval_end) for i in response.intervals] == [
        start + hours(1),
        start + hours(2),
        start + hours(3),
    ]
    counts = [
        [(s.state_type, s.state_name, s.count_runs) for s in i.states] for i in response.intervals
    ]
    assert counts == [
        [(state_pb2.STATE_TYPE_SCHEDULED, "Scheduled", 2)],
        [],
        [(state_pb2.STATE_TYPE_SCHEDULED, "Scheduled", 1)],
    ]


async def test_a_run_exactly_on_a_boundary_opens_the_next_bucket(task_runs: TaskRunStub) -> None:
    start = now().replace(microsecond=0) + hours(1)
    await create_run(task_runs, state=scheduled(start + hours(1)))
    response = await task_runs.TaskRunHistory(
        pb.TaskRunHistoryRequest(
            history_start=ts(start),
            history_end=ts(start + hours(2)),
            history_interval=seconds(3600),
        )
    )
    assert [len(i.states) for i in response.intervals] == [0, 1]


async def test_states_are_summarised_separately_with_times(task_runs: TaskRunStub) -> None:
    start = now() - hours(1)
    await create_run(task_runs, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
    await create_run(task_runs, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED))
    late = await create_run(task_runs, state=scheduled(now() - timedelta(minutes=30)))
    response = await task_runs.TaskRunHistory(
        pb.TaskRunHistoryRequest(
            history_start=ts(start),
            history_end=ts(start + hours(2)),
            history_interval=seconds(7200),
        )
    )
    (bucket,) = response.intervals
    by_type = {s.state_type: s for s in bucket.states}
    assert set(by_type) == {
        state_pb2.STATE_TYPE_SCHEDULED,
        state_pb2.STATE_TYPE_RUNNING,
        state_pb2.STATE_TYPE_COMPLETED,
    }
    assert all(s.count_runs == 1 for s in bucket.states)
    # A RUNNING run has been running since its state began; a late SCHEDULED one is late.
    assert by_type[state_pb2.STATE_TYPE_RUNNING].sum_estimated_run_time.ToTimedelta() > timedelta(0)
    lateness = by_type[state_pb2.STATE_TYPE_SCHEDULED].sum_estimated_lateness.ToTimedelta()
    assert timedelta(minutes=29) < lateness < timedelta(minutes=31)
    assert at(late.expected_start_time) < now()
    assert by_type[
        state_pb2.STATE_TYPE_COMPLETED
    ].sum_estimated_lateness.ToTimedelta() == timedelta(0)


async def test_filters_apply_to_history(task_runs: TaskRunStub) -> None:
    start = now() + hours(1)
    await create_run(task_runs, tags=["x"], state=scheduled(start))
    await create_run(task_runs, state=scheduled(start))
    response = await task_runs.TaskRunHistory(
        pb.TaskRunHistoryRequest(
            history_start=ts(start),
            history_end=ts(start + hours(1)),
            history_interval=seconds(3600),
            task_runs=f.TaskRunFilter(tags=f.TagsFilter(all=["x"])),
        )
    )
    assert [s.count_runs for s in response.intervals[0].states] == [1]


async def test_the_same_question_asked_again_answers_for_its_own_time(
    task_runs: TaskRunStub,
) -> None:
    """History statements are kept per query: the time of each call must still be its own."""
    await create_run(task_runs, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
    await create_run(task_runs, state=scheduled(now() - timedelta(minutes=30)))
    request = pb.TaskRunHistoryRequest(
        history_start=ts(now() - hours(3)),
        history_end=ts(now() + hours(1)),
        history_interval=seconds(4 * 3600),
    )

    def sums(response: pb.TaskRunHistoryResponse) -> tuple[timedelta, timedelta]:
        by_type = {s.state_type: s for s in response.intervals[0].states}
        running = by_type[state_pb2.STATE_TYPE_RUNNING].sum_estimated_run_time.ToTimedelta()
        waiting = by_type[state_pb2.STATE_TYPE_SCHEDULED].sum_estimated_lateness.ToTimedelta()
        return running, waiting

    first = sums(await task_runs.TaskRunHistory(request))
    await asyncio.sleep(0.3)
    second = sums(await task_runs.TaskRunHistory(request))
    assert second[0] - first[0] >= timedelta(seconds=0.3)  # still running
    assert second[1] - first[1] >= timedelta(seconds=0.3)  # still late


async def test_queries_that_differ_only_in_a_value_are_answered_apart(
    task_runs: TaskRunStub,
) -> None:
    start = now() + hours(1)
    await create_run(task_runs, tags=["x"], state=scheduled(start))
    await create_run(task_runs, tags=["y"], state=scheduled(start))
    await create_run(task_runs, tags=["y"], state=scheduled(start))

    async def count(tag: str) -> int:
        response = await task_runs.TaskRunHistory(
            pb.TaskRunHistoryRequest(
                history_start=ts(start),
                history_end=ts(start + hours(1)),
                history_interval=seconds(3600),
                task_runs=f.TaskRunFilter(tags=f.TagsFilter(all=[tag])),
            )
        )
        return sum(s.count_runs for s in response.intervals[0].states)

    assert [await count("x"), await count("y"), await count("x")] == [1, 2, 1]


async def test_history_bounds_are_validated(task_runs: TaskRunStub) -> None:
    start = now()
    good = {
        "history_start": ts(start),
        "history_end": ts(start + hours(1)),
        "history_interval": seconds(60),
    }
    cases: list[tuple[dict[str, object], str]] = [
        ({**good, "history_interval": seconds(0.5)}, "history_interval"),
        ({**good, "history_end": ts(start - hours(1))}, "history_end"),
        (
            {**good, "history_end": ts(start + hours(10)), "history_interval": seconds(1)},
            "limit is 500",
        ),
        ({k: v for k, v in good.items() if k != "history_start"}, "history_start"),
        ({k: v for k, v in good.items() if k != "history_interval"}, "history_interval"),
    ]
    for fields, needle in cases:
        await expect_status(
            task_runs.TaskRunHistory(pb.TaskRunHistoryRequest(**fields)),  # type: ignore[arg-type]
            grpc.StatusCode.INVALID_ARGUMENT,
            needle,
        )


async def test_five_hundred_buckets_are_allowed(task_runs: TaskRunStub) -> None:
    start = now()
    response = await task_runs.TaskRunHistory(
        pb.TaskRunHistoryRequest(
            history_start=ts(start),
            history_end=ts(start + timedelta(seconds=500)),
            history_interval=seconds(1),
        )
    )
    assert len(response.intervals) == 500


async def test_a_bucket_that_would_end_past_the_calendar_ends_with_it(
    task_runs: TaskRunStub,
) -> None:
    """Years 1 to 9999 in 9,000-year buckets, and one second at the last second: both answered
    (they were INTERNAL: the bucket ends overflowed)."""
    first, last = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    for start, end, width in (
        (first, datetime(9999, 1, 1, tzinfo=UTC), timedelta(days=9000 * 365)),
        (last, last + timedelta(microseconds=500_000), timedelta(seconds=1)),
    ):
        interval = Duration()
        interval.FromTimedelta(width)
        response = await task_runs.TaskRunHistory(
            pb.TaskRunHistoryRequest(
                history_start=ts(start), history_end=ts(end), history_interval=interval
            )
        )
        assert at(response.intervals[-1].interval_end) == LAST_INSTANT


async def test_lateness_summed_past_any_duration_is_clamped(task_runs: TaskRunStub) -> None:
    """1,400 runs expected at year 1 are late by two millennia each: the sum is more than a
    Python timedelta or a protobuf Duration holds (it was INTERNAL)."""
    long_ago = scheduled(datetime(1, 1, 1, tzinfo=UTC))
    for batch in range(0, 1400, 200):
        await asyncio.gather(
            *(
                create_run(task_runs, task_key="ancient", state=long_ago)
                for _ in range(batch, batch + 200)
            )
        )
    response = await task_runs.TaskRunHistory(
        pb.TaskRunHistoryRequest(
            history_start=ts(datetime(1, 1, 1, tzinfo=UTC)),
            history_end=ts(datetime(2001, 1, 1, tzinfo=UTC)),
            history_interval=seconds(3000 * 365 * 86400),
        )
    )
    (bucket,) = response.intervals
    (summary,) = bucket.states
    assert summary.count_runs == 1400
    assert summary.sum_estimated_lateness.seconds == MAX_SUMMED_SECONDS
