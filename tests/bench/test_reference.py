"""`make bench`'s reference column: Prefect measured in the same sitting where it was, the
figures of issue #12 only where Prefect cannot be asked the same question. (The Prefect rounds
themselves need Prefect from PyPI and run only in `make bench`.)"""

from __future__ import annotations

import math

from bench.__main__ import PREFECT_OPS_PER_SECOND, median_reference, prefect_reference


def test_a_row_measured_live_compares_with_the_live_figure() -> None:
    live = {"CreateTaskRun c=1": 50.0}
    assert prefect_reference("CreateTaskRun c=1", live) == (50.0, True)


def test_a_row_with_a_qualifier_finds_its_live_figure_by_name() -> None:
    name = "ReadTaskRuns state+tag, limit 200 c=32"
    assert prefect_reference(f"{name} (100k runs, loaded)", {name: 9.0}) == (9.0, True)


def test_a_row_not_measured_live_falls_back_to_the_recorded_figure() -> None:
    drain = "Drain 1000 queued runs, 1 subscriber, settled in batches"
    assert prefect_reference(drain, {"CreateTaskRun c=1": 50.0}) == (
        PREFECT_OPS_PER_SECOND[drain],
        False,
    )


def test_batch_creates_compare_with_single_creates_at_concurrency_32() -> None:
    live = {"CreateTaskRun c=32": 80.0}
    assert prefect_reference("BatchCreateTaskRuns x1000 c=4 (per run)", live) == (80.0, True)


def test_a_row_prefect_has_no_counterpart_for_has_no_reference() -> None:
    reference, measured = prefect_reference("Kill->redelivery, 2 s heartbeat timeout", {})
    assert math.isnan(reference) and not measured


def test_the_live_reference_is_the_median_of_the_prefect_rounds() -> None:
    rounds = [{"CreateTaskRun c=1": ops} for ops in (40.0, 70.0, 50.0)]
    assert median_reference(rounds) == {"CreateTaskRun c=1": 50.0}
    assert median_reference([]) == {}
