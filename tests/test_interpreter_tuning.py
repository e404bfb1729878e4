"""A server process's interpreter: young collections rarer than Python's default, and the
startup heap left out of later collections."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from taskrun_server.interpreter_tuning import (
    SWITCH_INTERVAL_SECONDS,
    YOUNG_GENERATION_THRESHOLD,
    freeze_startup_heap,
    tune_interpreter,
)


@pytest.fixture
def restored_interpreter() -> Iterator[None]:
    """The test process's own settings, put back afterwards."""
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    sys.setswitchinterval(interval)


def test_tuning_makes_young_collections_rarer_and_threads_offer_the_gil_sooner(
    restored_interpreter: None,
) -> None:
    _, middle, old = gc.get_threshold()
    tune_interpreter()
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, middle, old)
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS)


def test_objects_alive_at_startup_are_left_out_of_later_collections(
    restored_interpreter: None,
) -> None:
    built_at_startup = [[n] for n in range(1000)]  # containers: tracked by the collector
    freeze_startup_heap()
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.is_tracked(built_at_startup[0])
