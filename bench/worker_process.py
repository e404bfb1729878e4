"""A TaskWorker process for the end-to-end benchmark.

    python -m bench.worker_process TARGET JOURNAL CONCURRENCY

"bench.noop" notes, in JOURNAL, how long after its submission (the `submitted` parameter, a
wall-clock time on this machine) its body started, and returns at once. "bench.nap" sleeps
`seconds`, noting when its body started, for the kill-to-redelivery measurement.
"""

from __future__ import annotations

import sys
import time

from taskrun_client import ClientConfig, TaskWorker, current_task_run


def main() -> None:
    target, journal_path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    worker = TaskWorker(ClientConfig(target=target), concurrency=concurrency, client_id="bench")
    journal = open(journal_path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)

    @worker.task("bench.noop")
    async def noop(submitted: float) -> None:
        journal.write(f"lag {time.time() - submitted:.6f}\n")

    @worker.task("bench.nap")
    def nap(seconds: float) -> None:
        journal.write(f"start {current_task_run().id} {time.time():.6f}\n")
        time.sleep(seconds)

    worker.run()


if __name__ == "__main__":
    main()
