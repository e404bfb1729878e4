"""An embedded Postgres (PyPI `pgserver`) for machines that have none installed.

It is what lets `make run` and `make test` work on a fresh machine. Production deployments set
TASKRUN_DATABASE_URL instead.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _quietly_to(log_file: Path) -> None:
    """pgserver narrates initdb and pg_ctl at length, with their output: that goes to a file
    beside the data, not to the terminal of someone who just typed `make run`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    narrator = logging.getLogger("pgserver")
    if not any(isinstance(h, logging.FileHandler) for h in narrator.handlers):
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        narrator.addHandler(handler)
    narrator.propagate = False
    # platformdirs asks for a runtime directory containers often lack; pgserver does not need it.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a Postgres in data_dir and return its URL and the server handle.

    The handle must stay referenced for as long as the database is used: pgserver stops the
    server when the last handle is garbage collected.
    """
    data_dir = data_dir.resolve()
    log_file = data_dir.parent / f"{data_dir.name}.log"
    _quietly_to(log_file)
    try:  # imported here: only the embedded path needs it, and it is slow to import
        from pgserver.postgres_server import get_server
    except ImportError:
        raise RuntimeError(
            "TASKRUN_DATABASE_URL is not set and the embedded Postgres is not installed: "
            "set the URL, or install taskrun[embedded]"
        ) from None

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    uri: str = server.get_uri()
    logger.info("embedded Postgres running in %s (its log: %s)", data_dir, log_file)
    return uri, server
