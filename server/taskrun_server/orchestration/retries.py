"""How long a failed task run waits before its next attempt."""

from __future__ import annotations

import math
import random

from taskrun_server.domain.task_runs import TaskRunPolicy


def base_retry_delay(policy: TaskRunPolicy, run_count: int) -> float:
    """The configured delay before the retry that follows attempt `run_count` (1-based).

    A single delay applies to every retry; a list is indexed by attempt, its last value
    repeating once the list runs out.
    """
    delays = policy.retry_delay
    if not delays:
        return 0.0
    return delays[min(max(run_count, 1), len(delays)) - 1]


def jittered(delay: float, jitter_factor: float | None, rng: random.Random) -> float:
    """Spread a delay so that retries of many runs do not arrive together.

    Draws from an exponential distribution with mean `delay`, restricted to
    [delay * (1 - factor), delay * (1 + factor)] by sampling its inverse CDF between those
    bounds, the same shape as the reference's clamped Poisson interval.
    """
    if not jitter_factor or delay <= 0:
        return delay
    lower = max(delay * (1 - jitter_factor), 0.0)
    upper = delay * (1 + jitter_factor)
    cdf_lower = 1 - math.exp(-lower / delay)
    cdf_upper = 1 - math.exp(-upper / delay)
    u = min(rng.uniform(cdf_lower, cdf_upper), math.nextafter(1.0, 0.0))  # log(0) otherwise
    return -delay * math.log(1 - u)


MAX_RETRY_DELAY_SECONDS = 100 * 366 * 24 * 3600.0
"""Validation bounds delays and jitter well below this; runs stored before it may not be."""


def retry_delay_seconds(policy: TaskRunPolicy, run_count: int, rng: random.Random) -> float:
    """The delay before the next attempt, never so long that now plus it leaves the calendar."""
    delay = jittered(base_retry_delay(policy, run_count), policy.retry_jitter_factor, rng)
    return min(delay, MAX_RETRY_DELAY_SECONDS) if math.isfinite(delay) else MAX_RETRY_DELAY_SECONDS
