"""Start a taskrun server in its own process on a fresh database, for benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import make_url

from taskrun_server.database.migrate import upgrade_to_head


@dataclass(frozen=True)
class BenchServer:
    target: str
    database_url: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_url() -> tuple[str, Any]:
    configured = os.environ.get("TASKRUN_BENCH_DATABASE_URL")
    if configured:
        return configured, None
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2):
            return "postgresql://postgres@127.0.0.1:5432/postgres", None
    except psycopg.OperationalError:
        from taskrun_server.database.embedded import start_embedded_postgres

        return start_embedded_postgres(__import__("pathlib").Path(".taskrun/bench-postgres"))


def wait_serving(target: str, deadline: float) -> None:
    with grpc.insecure_channel(target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated, empty database, dropped afterwards. Yields its URL."""
    admin, embedded = _admin_url()
    name = f"taskrun_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        del embedded


@dataclass(frozen=True)
class Replica:
    target: str
    pid: int


@contextmanager
def replica(url: str, pool_size: int = 20, port: int | None = None) -> Iterator[Replica]:
    """A server process on `url`; yields it and stops it with SIGTERM afterwards."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUN_")}
    env |= {
        "TASKRUN_DATABASE_URL": url,
        "TASKRUN_PORT": str(port),
        "TASKRUN_MIGRATE_ON_START": "false",
        "TASKRUN_DB_POOL_SIZE": str(pool_size),
        "TASKRUN_LOG_LEVEL": "WARNING",
        "TASKRUN_METRICS_PORT": "0",
    }
    process = subprocess.Popen([sys.executable, "-m", "taskrun_server.cli", "serve"], env=env)
    try:
        target = f"127.0.0.1:{port}"
        wait_serving(target, time.monotonic() + 60)
        yield Replica(target=target, pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def bench_server(pool_size: int = 20) -> Iterator[BenchServer]:
    """A migrated, empty database and a server process on it; both gone afterwards."""
    with fresh_database() as url, replica(url, pool_size) as server:
        yield BenchServer(target=server.target, database_url=url)
