"""`TASKRUN_WORKERS`: several server processes behind one port, so that one replica uses every
core it is given. Python runs one thread of Python at a time; a second process doubles the CPU
the service can spend on encoding, orchestration and SQL round trips.

The parent resolves the database (starting the embedded Postgres if need be), migrates once,
then starts the workers with the spawn method (gRPC must not be forked with threads running).
Each binds the same port: gRPC sets SO_REUSEPORT, and the kernel spreads new connections over
the processes. Each has its own pool, NOTIFY listener, delivery timer and reaper: they already
coordinate through Postgres exactly as replicas do. Worker i serves metrics on
`TASKRUN_METRICS_PORT + i`.

The parent only supervises: SIGTERM or SIGINT is passed on to every worker (each drains its
calls within the grace period); if a worker dies on its own, the others are stopped and the
parent exits non-zero, so that whatever supervises the replica restarts it whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from taskrun_server.settings import Settings

logger = logging.getLogger("taskrun_server")


def worker_settings(settings: Settings, index: int, database_url: str) -> Settings:
    """What worker `index` runs with: the resolved database, no migration, its own metrics
    and dashboard ports (the base port plus its index)."""
    metrics_port = settings.metrics_port + index if settings.metrics_port else 0
    dashboard_port = settings.dashboard_port + index if settings.dashboard_port else 0
    return settings.model_copy(
        update={
            "workers": 1,
            "database_url": database_url,
            "migrate_on_start": False,
            "metrics_port": metrics_port,
            "dashboard_port": dashboard_port,
        }
    )


def supervise(settings: Settings, database_url: str, serve: Callable[[Settings], None]) -> int:
    """Run `serve` (a module-level function, so that spawn can find it) in `settings.workers`
    processes and wait for them. Returns the exit code."""
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(
            target=serve,
            args=(worker_settings(settings, index, database_url),),
            name=f"taskrun-worker-{index}",
        )
        for index in range(settings.workers)
    ]
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        _terminate(workers)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.start()
    logger.info("started %d server processes on port %d", len(workers), settings.port)
    return _wait(workers, stopping)


def _wait(workers: list[BaseProcess], stopping: threading.Event) -> int:
    """Wait for every worker; one that exits on its own stops the rest."""
    failed = False
    while any(worker.is_alive() for worker in workers):
        for worker in workers:
            worker.join(timeout=0.5)
            if worker.exitcode is not None and not stopping.is_set():
                logger.error(
                    "%s exited (code %s): stopping the others", worker.name, worker.exitcode
                )
                failed = True
                stopping.set()
                _terminate(workers)
    return 1 if failed else 0


def _terminate(workers: list[BaseProcess]) -> None:
    """SIGTERM to every worker still running: each drains its calls, then exits."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
