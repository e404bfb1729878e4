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


def _lower_clamp_multiple(upper_multiple: float) -> float:
    """The lower bound, as a multiple of the mean, that leaves as much probability between it
    and the median as between the median and the upper bound."""
    if upper_multiple >= 50:
        return 0.0  # 2**k overflows long before; the bound is 0 to many decimals anyway
    return math.log2(2**upper_multiple / (2**upper_multiple - 1))


def clamped_interval(average: float, clamping_factor: float, rng: random.Random) -> float:
    """A random interval around `average`: exponential (Poisson arrivals), drawn between
    average * c and average * (1 + factor), where c keeps the median where it was. This is the
    reference's clamped Poisson interval, used for retry jitter and for slot waits."""
    if average <= 0:
        return 0.0
    upper = average * (1 + clamping_factor)
    lower = max(0.0, average * _lower_clamp_multiple(1 + clamping_factor))
    cdf_lower = 1 - math.exp(-lower / average)
    cdf_upper = 1 - math.exp(-upper / average)
    u = min(rng.uniform(cdf_lower, cdf_upper), math.nextafter(1.0, 0.0))  # log(0) otherwise
    return -average * math.log(1 - u)


def jittered(delay: float, jitter_factor: float | None, rng: random.Random) -> float:
    """Spread a delay so that retries of many runs do not arrive together."""
    if not jitter_factor or delay <= 0:
        return delay
    return clamped_interval(delay, jitter_factor, rng)


MAX_RETRY_DELAY_SECONDS = 100 * 366 * 24 * 3600.0
"""Validation bounds delays and jitter well below this; runs stored before it may not be."""


def retry_delay_seconds(policy: TaskRunPolicy, run_count: int, rng: random.Random) -> float:
    """The delay before the next attempt, never so long that now plus it leaves the calendar."""
    delay = jittered(base_retry_delay(policy, run_count), policy.retry_jitter_factor, rng)
    return min(delay, MAX_RETRY_DELAY_SECONDS) if math.isfinite(delay) else MAX_RETRY_DELAY_SECONDS
