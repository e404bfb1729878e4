"""The row every benchmark reports, percentiles, and the server CPU a measurement cost."""

from __future__ import annotations

import math
from dataclasses import dataclass

import psutil


@dataclass
class Row:
    name: str
    ops_per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float = math.nan
    """Server CPU (user + system, every server process) per operation; NaN: not measured."""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class ServerCpu:
    """CPU seconds used so far by a server process and its children (TASKRUN_WORKERS > 1)."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)

    def seconds(self) -> float:
        total = _cpu(self._process)
        for child in self._process.children(recursive=True):
            try:
                total += _cpu(child)
            except psutil.NoSuchProcess:
                continue
        return total


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
