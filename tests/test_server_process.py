"""The `taskrun-server` command as `make run` starts it: embedded Postgres, health, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from grpc_health.v1 import health_pb2

from devtools.server_processes import free_port, wait_until_serving


def test_server_starts_on_embedded_postgres_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUN_")}
    env |= {"TASKRUN_PORT": str(port), "TASKRUN_DATA_DIR": str(tmp_path / "pg")}
    env["TASKRUN_DASHBOARD_PORT"] = "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "taskrun_server.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = wait_until_serving(f"127.0.0.1:{port}", time.monotonic() + 90)
        assert status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "embedded" in output and "serving on" in output


def test_an_insecure_configuration_is_refused_before_any_database_work() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUN_")}
    env |= {
        "TASKRUN_HOST": "0.0.0.0",
        "TASKRUN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",  # never reached
    }
    finished = subprocess.run(
        [sys.executable, "-m", "taskrun_server.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "refusing to serve plaintext on 0.0.0.0" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_cold_start_in_a_terminal_is_short_and_says_what_to_try(tmp_path: Path) -> None:
    """`make run` on a fresh machine: the embedded Postgres's chatter goes to a file, and the
    last lines say what to try next."""
    import pty

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUN_")}
    env |= {"TASKRUN_PORT": str(port), "TASKRUN_DATA_DIR": str(tmp_path / "pg"), "COLUMNS": "100"}
    env["TASKRUN_DASHBOARD_PORT"] = "0"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "taskrun_server.cli", "serve"],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    try:
        wait_until_serving(f"127.0.0.1:{port}", time.monotonic() + 90)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    text = output.decode()
    started = text.split("shutting down")[0]
    assert "Try it" in started and f"127.0.0.1:{port}" in started
    assert "(the dashboard)" in started
    assert len(started.strip().splitlines()) <= 15, started
    assert "initdb" not in started and "pg_ctl" not in started
    assert "initdb" in (tmp_path / "pg.log").read_text()
