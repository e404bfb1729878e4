"""Start a taskrun server in its own process on a fresh database, for benchmarks."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from devtools.scratch_database import scratch_database
from devtools.server_processes import (
    free_consecutive_ports,
    free_port,
    start_server_process,
    wait_until_serving,
)


@dataclass(frozen=True)
class BenchServer:
    target: str
    database_url: str
    pid: int
    dashboard: str


def admin_database_url() -> tuple[str, Any]:
    """Where benchmark databases are created: TASKRUN_BENCH_DATABASE_URL, the machine's Postgres,
    or an embedded one; with the embedded server's handle, to be kept alive while it is used."""
    configured = os.environ.get("TASKRUN_BENCH_DATABASE_URL")
    if configured:
        return configured, None
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2):
            return "postgresql://postgres@127.0.0.1:5432/postgres", None
    except psycopg.OperationalError:
        from taskrun_server.database.embedded import start_embedded_postgres

        return start_embedded_postgres(__import__("pathlib").Path(".taskrun/bench-postgres"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated, empty database, dropped afterwards. Yields its URL."""
    admin, embedded = admin_database_url()
    with scratch_database(admin, "taskrun_bench") as url:
        yield url
    del embedded  # an embedded server lives as long as this reference


@dataclass(frozen=True)
class Replica:
    target: str
    pid: int
    dashboard: str
    """The first process's dashboard (TASKRUN_WORKERS processes serve it on consecutive ports)."""


@contextmanager
def replica(
    url: str, pool_size: int = 20, port: int | None = None, workers: int = 1
) -> Iterator[Replica]:
    """A server (of `workers` processes) on `url`; yields it and stops it with SIGTERM after."""
    port = port or free_port()
    dashboard = free_consecutive_ports(workers)
    process = start_server_process(
        url,
        port,
        migrate_on_start="false",
        db_pool_size=str(pool_size),
        workers=str(workers),
        dashboard_port=str(dashboard),
    )
    try:
        target = f"127.0.0.1:{port}"
        wait_until_serving(target, time.monotonic() + 60)
        yield Replica(target=target, pid=process.pid, dashboard=f"http://127.0.0.1:{dashboard}")
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def bench_server(pool_size: int = 20, workers: int = 1) -> Iterator[BenchServer]:
    """A migrated, empty database and a server on it; both gone afterwards."""
    with fresh_database() as url, replica(url, pool_size, workers=workers) as server:
        yield BenchServer(
            target=server.target, database_url=url, pid=server.pid, dashboard=server.dashboard
        )
