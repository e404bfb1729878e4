"""The conformance comparison: what counts as agreeing, and what is a deliberate difference.
(The suite itself, `make conformance`, needs Prefect from PyPI and is not part of `make test`.)"""

from __future__ import annotations

from conformance.compare import differences
from conformance.scenarios import all_scenarios


def test_identical_recordings_agree() -> None:
    seen = [{"status": "ACCEPT", "run": {"run_count": 1, "history": ["Pending", "Running"]}}]
    assert differences("lifecycle/x", seen, seen) == []


def test_a_field_that_differs_is_reported_with_both_sides() -> None:
    (found,) = differences("lifecycle/x", [{"run": {"run_count": 1}}], [{"run": {"run_count": 0}}])
    assert (found.field, found.prefect, found.taskrun) == ("step0.run.run_count", 1, 0)
    assert found.deliberate is None


def test_waits_within_a_second_agree_and_further_apart_do_not() -> None:
    assert differences("slots/x", [{"delay": 2}], [{"delay": 3}]) == []
    assert len(differences("slots/x", [{"delay": 2}], [{"delay": 30}])) == 1


def test_a_listed_difference_is_marked_deliberate_only_where_listed() -> None:
    (listed,) = differences("slots/cancelling-releases", [{}, {}, {"slots": {"db": 1}}],
                            [{}, {}, {"slots": {"db": 0}}])  # fmt: skip
    (elsewhere,) = differences("slots/free", [{"slots": {"db": 1}}], [{"slots": {"db": 0}}])
    assert listed.deliberate is not None and elsewhere.deliberate is None


def test_scenario_keys_are_unique() -> None:
    keys = [scenario.key for scenario in all_scenarios()]
    assert len(keys) == len(set(keys)) > 400
