"""Server processes: a free port, starting one with given settings, waiting for its health."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_consecutive_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports nobody listens on now: a server of
    TASKRUN_WORKERS processes serves its dashboard on port, port+1, ... and the port after a
    free one may be a client's ephemeral port."""
    for _ in range(100):
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise RuntimeError(f"no {count} consecutive free loopback ports in 100 tries")


def wait_until_serving(target: str, deadline: float) -> int:
    """Poll health until the server at target answers; returns the status it reported.

    Raises the last RpcError once time.monotonic() passes deadline.
    """
    with grpc.insecure_channel(target) as channel:
        # types-grpcio-health-checking does not declare the stub's methods.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status: int = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                return status
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def start_server_process(database_url: str, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """Start a server process without waiting for it to serve."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUN_")}
    env |= {
        "TASKRUN_DATABASE_URL": database_url,
        "TASKRUN_PORT": str(port),
        "TASKRUN_LOG_LEVEL": "WARNING",
        "TASKRUN_METRICS_PORT": "0",
        "TASKRUN_DASHBOARD_PORT": "0",
        **{f"TASKRUN_{k.upper()}": v for k, v in settings.items()},
    }
    return subprocess.Popen([sys.executable, "-m", "taskrun_server.cli", "serve"], env=env)
