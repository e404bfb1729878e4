"""A real TaskWorker process for the process-level tests.

    python -m tests.worker_process TARGET JOURNAL CONCURRENCY

It runs "nap" (a sync function that sleeps `seconds`) and writes "start RUN_ID" and "end RUN_ID"
to JOURNAL as it goes, flushed at once, so that a test can tell what it is doing before killing,
freezing or resuming it.
"""

from __future__ import annotations

import sys
import time

from taskrun_client import ClientConfig, TaskWorker, current_task_run


def main() -> None:
    target, journal_path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    worker = TaskWorker(ClientConfig(target=target), concurrency=concurrency, client_id="proc")
    journal = open(journal_path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)

    @worker.task("nap")
    def nap(seconds: float = 0.0) -> float:
        journal.write(f"start {current_task_run().id}\n")
        time.sleep(seconds)
        journal.write(f"end {current_task_run().id}\n")
        return seconds

    worker.run()


if __name__ == "__main__":
    main()
