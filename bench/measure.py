"""The row every benchmark reports, percentiles, the server CPU a measurement cost, and the
loop that measures calls."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
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


async def measure(
    name: str,
    call: Callable[[int], Awaitable[object]],
    *,
    total: int,
    concurrency: int,
    cpu: ServerCpu | None = None,
) -> Row:
    """Run `total` calls from `concurrency` loops; latency per call, throughput overall, and the
    server CPU per call when `cpu` watches the server."""
    latencies: list[float] = []
    counter = iter(range(total))
    cpu_before = cpu.seconds() if cpu is not None else math.nan

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_after = cpu.seconds() if cpu is not None else math.nan
    return Row(
        name=name,
        ops_per_second=total / elapsed,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_cpu_ms=(cpu_after - cpu_before) * 1000 / total,
    )
