"""A streaming hot standby of a PrivatePostgres, made the way an operator makes one: a base
backup (`pg_basebackup -R`) of the primary, started as a standby that replays its WAL. Both
listen only on Unix sockets in the test's own directories."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from tests.faults.private_postgres import PrivatePostgres


class StreamingStandby:
    def __init__(self, primary: PrivatePostgres, data_dir: Path) -> None:
        import pgserver

        self._bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self._user: str | None = getattr(primary.handle, "system_user", None)
        self._data_dir = data_dir.resolve()
        self._data_dir.mkdir(mode=0o700, parents=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self._data_dir, entry.pw_uid, entry.pw_gid)
        self._run(
            "pg_basebackup", "-D", str(self._data_dir), "-R", "-X", "stream",
            "-h", primary.socket_dir, "-U", "postgres",
        )  # fmt: skip
        # The primary keeps its socket in its data directory, and the backup copied the
        # socket's lock file: it is the primary's, not the standby's.
        for lock in self._data_dir.glob(".s.PGSQL.*"):
            lock.unlink()
        self._run(
            "pg_ctl", "-D", str(self._data_dir), "-w",
            "-o", '-h ""', "-o", f"-k {self._data_dir}",
            "-l", str(self._data_dir / "standby.log"), "start",
        )  # fmt: skip
        self.url = f"postgresql://postgres@/postgres?host={self._data_dir}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, timeout=120, capture_output=True)

    def _sql(self, statement: str) -> Any:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(statement).fetchone()

    def pause_replay(self) -> None:
        """Stop applying the primary's changes: reads see the primary as it was."""
        self._sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._sql("SELECT pg_wal_replay_resume()")

    def is_standby(self) -> bool:
        return bool(self._sql("SELECT pg_is_in_recovery()")[0])

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self._data_dir), "-m", "fast", "-w", "stop")
        shutil.rmtree(self._data_dir, ignore_errors=True)
