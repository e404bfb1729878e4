"""`taskrun-server`: run the server, or only apply migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from taskrun_server.database.embedded import start_embedded_postgres
from taskrun_server.database.migrate import upgrade_to_head
from taskrun_server.interpreter_tuning import freeze_startup_heap, tune_interpreter
from taskrun_server.observability.log_format import configure_logging
from taskrun_server.security.transport import transport_for
from taskrun_server.server import serve_until_signalled, start_server
from taskrun_server.settings import Settings, get_settings
from taskrun_server.worker_processes import supervise

logger = logging.getLogger("taskrun_server")


def resolve_database_url(settings: Settings) -> tuple[str, Any]:
    """The configured URL, or an embedded Postgres's (with the handle that keeps it alive)."""
    if settings.database_url:
        return settings.database_url, None
    logger.info("TASKRUN_DATABASE_URL is not set: starting an embedded Postgres")
    return start_embedded_postgres(settings.data_dir)


async def serve_forever(settings: Settings) -> None:
    """One server process, until SIGTERM or SIGINT."""
    tune_interpreter()
    # Refuse an insecure configuration before touching (or starting) any database.
    transport = transport_for(settings)
    url, _embedded = resolve_database_url(settings)
    if settings.migrate_on_start:
        await asyncio.to_thread(upgrade_to_head, url)
    running = await start_server(settings, url, transport)
    freeze_startup_heap()
    if settings.log_format == "text" and sys.stderr.isatty():
        dashboard = running.dashboard.url if running.dashboard else None
        logger.info(welcome(f"{settings.host}:{running.port}", dashboard))
    await serve_until_signalled(running, settings.grace_period_seconds)


def welcome(target: str, dashboard: str | None) -> str:
    """What to try next, for someone who just started a server in their terminal."""
    create = '{"task_key": "hello", "dynamic_key": "1"}'
    look = f"  open {dashboard} (the dashboard)\n" if dashboard else ""
    return (
        f"ready on {target}. Try it:\n"
        f"{look}"
        f"  .venv/bin/taskrun --target {target} list\n"
        f"  node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge -d '{create}' \\\n"
        f"      http://{target}/taskrun.v1.TaskRunService/CreateTaskRun\n"
        "  (Ctrl-C stops the server; README.md says more)"
    )


def serve_in_this_process(settings: Settings) -> None:
    """A worker process's entry point (see worker_processes.py)."""
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve_forever(settings))


def _serve_with_workers(settings: Settings) -> int:
    """Several processes on one port (TASKRUN_WORKERS): checked, migrated once, supervised."""
    if settings.port == 0:  # each worker would pick a port of its own
        raise RuntimeError("TASKRUN_WORKERS above 1 needs a fixed TASKRUN_PORT, not 0")
    transport_for(settings)  # refuse an insecure configuration before anything starts
    url, embedded = resolve_database_url(settings)
    if settings.migrate_on_start:
        upgrade_to_head(url)
    code = supervise(settings, url, serve_in_this_process)
    del embedded  # an embedded Postgres lives until every worker has stopped
    return code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskrun-server", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="apply migrations and serve gRPC (the default)")
    sub.add_parser("migrate", help="apply pending migrations and exit")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "migrate":
            url, _embedded = resolve_database_url(settings)
            upgrade_to_head(url)
            return
        if settings.workers > 1:
            sys.exit(_serve_with_workers(settings))
        asyncio.run(serve_forever(settings))
    except RuntimeError as error:  # configuration problems: say what to fix, no traceback
        parser.exit(2, f"taskrun-server: {error}\n")


if __name__ == "__main__":
    main()
