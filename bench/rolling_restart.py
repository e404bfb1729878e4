"""A rolling restart behind a load balancer: what share of calls fail while two replicas are
restarted one after the other (SIGTERM, exit, start again on the same port).

    python -m bench.rolling_restart        # needs Debian's nginx-light; loopback only

16 clients on AsyncTaskRunClient (gRPC's retry policy, wait-for-ready) create runs and drive
them RUNNING -> COMPLETED through nginx `grpc_pass` while the replicas restart in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import subprocess
import time
import uuid

from bench.scale_out import nginx
from bench.server_process import fresh_database
from devtools.server_processes import free_port, start_server_process, wait_until_serving
from taskrun.v1 import state_pb2
from taskrun_client import AsyncTaskRunClient, ClientConfig, TaskRunError


async def drive(target: str, stop: asyncio.Event, calls: list[int], failures: list[str]) -> None:
    async with AsyncTaskRunClient(ClientConfig(target=target, timeout=20)) as client:
        tag = uuid.uuid4().hex[:8]
        n = 0
        while not stop.is_set():
            n += 1
            try:
                run = (await client.create_task_run("rolling", f"{tag}-{n}")).task_run
                for kind in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
                    calls[0] += 1
                    await client.set_task_run_state(run.id, kind)
                calls[0] += 1
            except TaskRunError as error:
                failures.append(f"{error.code.name}: {error.details[:70]}")


async def restart(url: str, port: int, processes: dict[int, subprocess.Popen[bytes]]) -> float:
    """SIGTERM the replica on `port`, wait for it to exit, start it again; seconds it was out."""
    process = processes[port]
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 30)
    processes[port] = start_server_process(url, port, migrate_on_start="false")
    await asyncio.to_thread(wait_until_serving, f"127.0.0.1:{port}", time.monotonic() + 60)
    return time.monotonic() - began


async def main(clients: int) -> None:
    with fresh_database() as url:
        ports = [free_port(), free_port()]
        processes: dict[int, subprocess.Popen[bytes]] = {
            port: start_server_process(url, port, migrate_on_start="false") for port in ports
        }
        try:
            for port in ports:
                wait_until_serving(f"127.0.0.1:{port}", time.monotonic() + 60)
            with nginx([f"127.0.0.1:{port}" for port in ports]) as target:
                stop, calls = asyncio.Event(), [0]
                failures: list[str] = []
                load = [
                    asyncio.ensure_future(drive(target, stop, calls, failures))
                    for _ in range(clients)
                ]
                await asyncio.sleep(3)
                outages = [await restart(url, port, processes) for port in ports]
                await asyncio.sleep(3)
                stop.set()
                await asyncio.gather(*load)
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=30)
    share = len(failures) / max(calls[0], 1)
    kinds = collections.Counter(failures).most_common(4)
    print(
        f"rolling restart of 2 replicas behind nginx, {clients} clients: {calls[0]} calls, "
        f"{len(failures)} failed ({share:.3%}) {kinds}; each replica out "
        f"{', '.join(f'{o:.1f}s' for o in outages)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.rolling_restart", description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    asyncio.run(main(parser.parse_args().clients))
