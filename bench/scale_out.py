"""`make scale-out`: 1, 2 and 3 server replicas on one Postgres behind nginx (`grpc_pass`).

Drives the same bounded mixed load through nginx for each replica count: API clients that
create, run, complete and read task runs and schedule one background run each round, and
8 subscribers that settle every delivery. Prints a table of throughput, and checks that
every scheduled run was delivered, once per lease.

Needs Debian's nginx (`apt-get install nginx-light`); only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench.server_process import fresh_database, replica
from devtools.server_processes import free_port, wait_until_serving
from taskrun.v1 import filters_pb2, state_pb2, task_run_service_pb2, task_run_service_pb2_grpc

pb = task_run_service_pb2
NGINX_CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    upstream taskrun {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        grpc_read_timeout 1h;
        grpc_send_timeout 1h;
        # A replica that stopped: try the other (a cached connection it closed counts as sent,
        # so non_idempotent is needed for nginx to move on; the client's calls are idempotent
        # or fenced), and answer what still fails as gRPC UNAVAILABLE in trailers only, which
        # gRPC's retry policy retries (an HTTP 502 it cannot).
        grpc_next_upstream error timeout non_idempotent;
        grpc_next_upstream_tries 2;
        error_page 502 503 504 = /unavailable;
        location / {{ grpc_pass grpc://taskrun; }}
        location = /unavailable {{
            internal;
            default_type application/grpc;
            add_header grpc-status 14 always;
            add_header grpc-message "no replica answered" always;
            return 204;
        }}
    }}
}}
"""


@contextmanager
def nginx(upstreams: list[str]) -> Iterator[str]:
    """nginx on a free loopback port, balancing gRPC requests round-robin over `upstreams`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="taskrun-nginx-") as folder:
        # fail_timeout 1s: a replica that restarts is tried again a second later, not ten.
        servers = "\n".join(
            f"        server {target} max_fails=1 fail_timeout=1s;" for target in upstreams
        )
        config = Path(folder) / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(dir=folder, servers=servers, port=port))
        process = subprocess.Popen(
            [binary, "-c", str(config), "-p", folder, "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        try:
            target = f"127.0.0.1:{port}"
            wait_until_serving(target, time.monotonic() + 20)
            yield target
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass
class Tally:
    api_calls: int = 0
    scheduled: set[str] = field(default_factory=set)
    deliveries: Counter[tuple[str, int]] = field(default_factory=Counter)
    settled: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)


async def api_client(stub: Any, key: str, tally: Tally, stop: asyncio.Event) -> None:
    tag = uuid.uuid4().hex[:8]
    read = pb.ReadTaskRunsRequest(
        task_runs=filters_pb2.TaskRunFilter(tags=filters_pb2.TagsFilter(all=[tag])), limit=10
    )
    n = 0
    while not stop.is_set():
        n += 1
        try:
            created = await stub.CreateTaskRun(
                pb.CreateTaskRunRequest(task_key="scale.api", dynamic_key=f"{tag}-{n}", tags=[tag])
            )
            for kind in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
                await stub.SetTaskRunState(
                    pb.SetTaskRunStateRequest(
                        task_run_id=created.task_run.id, state=state_pb2.StateCreate(type=kind)
                    )
                )
            await stub.ReadTaskRuns(read)
            scheduled = await stub.CreateTaskRun(
                pb.CreateTaskRunRequest(
                    task_key=key,
                    dynamic_key=f"{tag}-{n}",
                    state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED),
                )
            )
            tally.scheduled.add(scheduled.task_run.id)
            tally.api_calls += 5
        except grpc.aio.AioRpcError as error:
            tally.errors[error.code().name] += 1


async def subscriber(stub: Any, key: str, tally: Tally) -> None:
    stream = stub.SubscribeScheduledTasks(
        pb.SubscribeScheduledTasksRequest(task_keys=[key], prefetch=10)
    )
    try:
        async for delivery in stream:
            run = delivery.task_run
            tally.deliveries[(run.id, delivery.delivery_count)] += 1
            answer = await stub.SetTaskRunState(
                pb.SetTaskRunStateRequest(
                    task_run_id=run.id,
                    state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING),
                )
            )
            if answer.status == pb.SET_STATE_STATUS_ACCEPT:
                tally.settled.add(run.id)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            tally.errors[f"stream {error.code().name}"] += 1


async def drive(target: str, clients: int, subscribers: int, seconds: float) -> dict[str, float]:
    key = f"scale.{uuid.uuid4().hex[:8]}"
    tally, stop = Tally(), asyncio.Event()
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    stubs = [task_run_service_pb2_grpc.TaskRunServiceStub(channel) for channel in channels]
    consumers = [
        asyncio.create_task(subscriber(stubs[n % 4], key, tally)) for n in range(subscribers)
    ]
    producers = [
        asyncio.create_task(api_client(stubs[n % 4], key, tally, stop)) for n in range(clients)
    ]
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*producers)
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 60
    while not tally.scheduled <= tally.settled and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    drained = time.perf_counter() - started
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    for channel in channels:
        await channel.close()
    twice = sum(1 for count in tally.deliveries.values() if count > 1)
    return {
        "api_calls_per_s": tally.api_calls / elapsed,
        "deliveries_per_s": len(tally.settled) / drained,
        "scheduled": len(tally.scheduled),
        "undelivered": len(tally.scheduled - tally.settled),
        "same_lease_twice": twice,
        "redeliveries": sum(1 for (_, count) in tally.deliveries if count > 1),
        "errors": sum(tally.errors.values()),
    }


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run(replicas: int, clients: int, subscribers: int, seconds: float) -> dict[str, float]:
    """One round: where the CPU went is measured too, since 2 cores are shared by all."""
    with fresh_database() as url, ExitStack() as stack:
        servers = [stack.enter_context(replica(url, pool_size=10)) for _ in range(replicas)]
        lb = stack.enter_context(nginx([server.target for server in servers]))
        machine_before = psutil.cpu_times()
        servers_before = sum(_cpu_seconds(server.pid) for server in servers)
        client_before = time.process_time()
        wall_before = time.monotonic()
        figures = asyncio.run(drive(lb, clients, subscribers, seconds))
        wall = time.monotonic() - wall_before
        machine_after = psutil.cpu_times()
        busy = sum(machine_after) - sum(machine_before)
        idle = machine_after.idle - machine_before.idle
        figures["machine_busy"] = (busy - idle) / busy * 100
        figures["servers_cores"] = (
            sum(_cpu_seconds(server.pid) for server in servers) - servers_before
        ) / wall
        figures["client_cores"] = (time.process_time() - client_before) / wall
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--clients", type=int, default=24, help="concurrent API clients")
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15, help="load per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    args = parser.parse_args()
    header = (
        "| Replicas | API calls/s | Deliveries/s | Scheduled | Undelivered "
        "| Same lease twice | Redelivered | Errors | CPU busy | Servers' cores | Client's cores |"
    )
    print(header)
    print("| ---: " * 11 + "|")
    for count in args.replicas:
        rounds = [
            run(count, args.clients, args.subscribers, args.seconds) for _ in range(args.repeat)
        ]
        api = statistics.median(r["api_calls_per_s"] for r in rounds)
        delivered = statistics.median(r["deliveries_per_s"] for r in rounds)
        print(
            f"| {count} | {api:.0f} | {delivered:.0f} | {sum(r['scheduled'] for r in rounds):.0f} "
            f"| {sum(r['undelivered'] for r in rounds):.0f} "
            f"| {sum(r['same_lease_twice'] for r in rounds):.0f} "
            f"| {sum(r['redeliveries'] for r in rounds):.0f} "
            f"| {sum(r['errors'] for r in rounds):.0f} "
            f"| {statistics.median(r['machine_busy'] for r in rounds):.0f}% "
            f"| {statistics.median(r['servers_cores'] for r in rounds):.2f} "
            f"| {statistics.median(r['client_cores'] for r in rounds):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
