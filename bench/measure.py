"""The row every benchmark reports, and percentiles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    name: str
    ops_per_second: float
    p50_ms: float
    p99_ms: float


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
