"""`taskrun-server`'s entry point: says what to install when the server's dependencies are not
there (`pip install taskrun` brings the client, worker and CLI only)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from taskrun_server.cli import main as serve
    except ImportError as error:
        print(
            f"taskrun-server: the server's dependencies are not installed ({error.name} is "
            "missing): pip install 'taskrun[server]'",
            file=sys.stderr,
        )
        sys.exit(1)
    serve()
