"""Retry delays: indexing by attempt and the bounds of jitter."""

from __future__ import annotations

import math
import random

from taskrun_server.domain.task_runs import TaskRunPolicy
from taskrun_server.orchestration.retries import base_retry_delay, jittered


def test_no_delay_configured_means_immediately() -> None:
    assert base_retry_delay(TaskRunPolicy(), 1) == 0


def test_a_single_delay_applies_to_every_attempt() -> None:
    policy = TaskRunPolicy(retry_delay=[7])
    assert [base_retry_delay(policy, n) for n in (1, 2, 5)] == [7, 7, 7]


def test_the_last_delay_repeats_once_the_list_runs_out() -> None:
    policy = TaskRunPolicy(retry_delay=[1, 2, 3])
    assert [base_retry_delay(policy, n) for n in (1, 2, 3, 4, 9)] == [1, 2, 3, 3, 3]


def test_jitter_stays_within_the_reference_bounds_and_varies() -> None:
    """Factor 0.5 on 10 s: at most 15 s, and at least 10 * log2(2**1.5 / (2**1.5 - 1)) s."""
    rng = random.Random(1)
    samples = [jittered(10.0, 0.5, rng) for _ in range(2000)]
    lower = 10 * math.log2(2**1.5 / (2**1.5 - 1))
    assert all(lower - 1e-9 <= s <= 15.0 for s in samples)
    assert min(samples) < lower + 0.1 and max(samples) > 14.9
    assert len({round(s, 3) for s in samples}) > 100


def test_no_jitter_keeps_the_delay() -> None:
    assert jittered(10.0, None, random.Random()) == 10.0
    assert jittered(0.0, 0.5, random.Random()) == 0.0
