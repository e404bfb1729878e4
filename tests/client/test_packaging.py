"""`pip install taskrun` brings the client, the worker and the CLI with only what they need;
the server's dependencies come with the `server` extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import requires

SERVER_ONLY = (
    "sqlalchemy", "psycopg", "alembic", "pydantic", "pydantic_settings",
    "prometheus_client", "orjson", "pgserver", "grpc_health", "grpc_reflection",
)  # fmt: skip

WITHOUT_SERVER_DEPENDENCIES = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {SERVER_ONLY!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    """
)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SERVER_DEPENDENCIES + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_client_worker_and_cli_import_without_the_server_dependencies() -> None:
    done = python(
        """
        import taskrun_client, taskrun_client.cli, taskrun_client.worker
        from taskrun_client import AsyncTaskRunClient, TaskRunClient, TaskWorker, filters
        sys.argv = ["taskrun", "--help"]
        try:
            taskrun_client.cli.main()
        except SystemExit as end:
            assert end.code == 0, end.code
        assert not any(m.split(".")[0] in {"sqlalchemy", "psycopg"} for m in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "usage: taskrun" in done.stdout


def test_the_server_without_its_dependencies_says_what_to_install() -> None:
    done = python("from taskrun_server.launcher import main; main()")
    assert done.returncode == 1
    assert "pip install 'taskrun[server]'" in done.stderr


def test_the_base_requirements_are_the_clients_alone() -> None:
    declared = requires("taskrun") or []
    base = {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in declared if ";" not in r}
    assert base == {"grpcio", "grpcio-status", "protobuf", "rich"}
    server = [r for r in declared if r.endswith("extra == 'server'")]
    assert any(r.startswith("sqlalchemy") for r in server)
