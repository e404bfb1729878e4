"""Real `taskrun-server` processes for tests that need several replicas or a restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from devtools.server_processes import free_port, start_server_process, wait_until_serving


@contextmanager
def server_process(database_url: str, **settings: str) -> Iterator[str]:
    """A server process on `database_url`; yields its target, stops it with SIGTERM."""
    port = free_port()
    process = start_server_process(database_url, port, **settings)
    try:
        wait_until_serving(f"127.0.0.1:{port}", time.monotonic() + 60)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the `taskrun` CLI as a process, without blocking the event loop (an in-process
    server may share it). Returns the exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskrun_client.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
