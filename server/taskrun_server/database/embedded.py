"""An embedded Postgres (PyPI `pgserver`) for machines that have none installed.

It is what lets `make run` and `make test` work on a fresh machine. Production deployments set
TASKRUN_DATABASE_URL instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a Postgres in data_dir and return its URL and the server handle.

    The handle must stay referenced for as long as the database is used: pgserver stops the
    server when the last handle is garbage collected.
    """
    try:  # imported here: only the embedded path needs it, and it is slow to import
        from pgserver.postgres_server import get_server
    except ImportError:
        raise RuntimeError(
            "TASKRUN_DATABASE_URL is not set and the embedded Postgres is not installed: "
            "set the URL, or install taskrun[embedded]"
        ) from None

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    uri: str = server.get_uri()
    logger.info("embedded postgres running in %s", data_dir)
    return uri, server
