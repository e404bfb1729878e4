"""A Postgres cluster of the test's own (the embedded `pgserver` build), so that a test can crash
and restart it without disturbing the machine's server that other tests use.

pg_ctl is run through `runuser` rather than pgserver's helper: that helper switches user in a
forked child of this multi-threaded (gRPC) process, which crashed pg_ctl.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from taskrun_server.database.embedded import start_embedded_postgres


class PrivatePostgres:
    def __init__(self, data_dir: Path) -> None:
        self.url, self.handle = start_embedded_postgres(data_dir)
        self._data_dir = data_dir.resolve()
        # postmaster.pid: line 1 the pid, line 5 the socket directory.
        lines = (self._data_dir / "postmaster.pid").read_text().splitlines()
        self.socket_dir = lines[4]

    def _postmaster_pid(self) -> int:
        return int((self._data_dir / "postmaster.pid").read_text().splitlines()[0])

    def crash(self) -> None:
        """An immediate shutdown: no checkpoint, crash recovery on the next start."""
        self._signal_postmaster(signal.SIGQUIT)

    def stop(self) -> None:
        """A fast, clean shutdown (pgserver no longer tracks a cluster this class restarted, so
        it would not stop it at exit)."""
        self._signal_postmaster(signal.SIGINT)

    def _signal_postmaster(self, sig: signal.Signals) -> None:
        """Send postgres's documented shutdown signal and wait for the postmaster to go."""
        pid = self._postmaster_pid()
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, "postgres did not stop"
            time.sleep(0.05)

    def start(self) -> None:
        import pgserver

        pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        command = [
            str(pg_ctl), "-D", str(self._data_dir), "-w",
            "-o", '-h ""', "-o", f"-k {self.socket_dir}",
            "-l", str(self._data_dir / "restart.log"), "start",
        ]  # fmt: skip
        user: Any = getattr(self.handle, "system_user", None)
        if user:
            command = ["runuser", "-u", user, "--", *command]
        subprocess.run(command, check=True, timeout=60, capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
