"""A real Prefect 3.9.1 server for the comparison: installed into a virtualenv of its own
(never the project's), on a database of its own, its background services off."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from devtools.server_processes import free_port

VERSION = "3.9.1"
VENV = Path(".conformance/prefect-venv")
WHEELS = Path(".conformance/wheels")


def install() -> Path:
    """The Prefect executable, installed on first use. Prefect 3.9.1 pins a certifi newer than
    the index may hold, so its other requirements are installed first, then the wheel alone."""
    prefect = VENV / "bin" / "prefect"
    if prefect.exists():
        return prefect
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    python = [str(VENV / "bin" / "python"), "-m", "pip"]
    pip = [*python, "install", "--quiet"]
    subprocess.run(
        [*python, "download", "--quiet", "--no-deps", f"prefect=={VERSION}", "-d", str(WHEELS)],
        check=True,
    )
    wheel = next(WHEELS.glob(f"prefect-{VERSION}-*.whl"))
    requirements = _requirements(wheel)
    subprocess.run([*pip, *requirements], check=True)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    return prefect


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"prefect-{VERSION}.dist-info/METADATA").decode()
    found = []
    for line in io.StringIO(metadata):
        if not line.startswith("Requires-Dist: ") or "extra ==" in line:
            continue
        requirement = line.removeprefix("Requires-Dist: ").strip()
        if requirement.startswith("certifi"):
            requirement = "certifi"
        found.append(requirement)
    return found


@contextmanager
def prefect_server(admin_url: str, database: str = "taskrun_conformance_prefect") -> Iterator[str]:
    """A Prefect server on a fresh `database` beside `admin_url`'s; yields its API URL."""
    prefect = install()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    port = free_port()
    home = Path(".conformance/prefect-home").absolute()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"{base}/{database}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = open(".conformance/prefect-server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(prefect),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-services",
            "--no-ui",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, process, time.monotonic() + 180)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the Prefect server exited; see .conformance/prefect-server.log")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the Prefect server did not become healthy in time")
