"""`TASKRUN_WORKERS`: several server processes behind one port, supervised by one parent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import psutil

from devtools.server_processes import free_port, start_server_process, wait_until_serving
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc


@contextmanager
def two_workers(database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    parent = start_server_process(database_url, port, workers="2", migrate_on_start="false")
    workers: list[psutil.Process] = []
    try:
        wait_until_serving(f"127.0.0.1:{port}", time.monotonic() + 60)
        workers = psutil.Process(parent.pid).children()
        yield parent, port
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=30)
        for worker in workers:
            if worker.is_running():
                worker.kill()


def listeners(parent: subprocess.Popen[bytes], port: int) -> list[int]:
    """The pids of the parent's children that listen on `port`, once both are up."""
    deadline = time.monotonic() + 60
    while True:
        found = [
            child.pid
            for child in psutil.Process(parent.pid).children()
            if any(
                c.laddr.port == port and c.status == psutil.CONN_LISTEN
                for c in child.net_connections()
            )
        ]
        if len(found) == 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_two_worker_processes_share_the_port_and_both_answer(database_url: str) -> None:
    with two_workers(database_url) as (parent, port):
        assert len(listeners(parent, port)) == 2
        for i in range(40):  # a connection each: the kernel spreads them over the workers
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
                answer = stub.CreateTaskRun(
                    pb.CreateTaskRunRequest(task_key="workers", dynamic_key=f"{os.getpid()}-{i}")
                )
                assert answer.created


def test_sigterm_to_the_parent_stops_every_worker_cleanly(database_url: str) -> None:
    with two_workers(database_url) as (parent, port):
        workers = [psutil.Process(pid) for pid in listeners(parent, port)]
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive


def test_a_worker_that_dies_takes_the_replica_down_for_a_whole_restart(database_url: str) -> None:
    with two_workers(database_url) as (parent, port):
        first, second = listeners(parent, port)
        os.kill(first, signal.SIGKILL)
        assert parent.wait(timeout=30) == 1
        assert not psutil.pid_exists(second) or psutil.Process(second).status() == "zombie"


def test_several_workers_need_a_fixed_port(database_url: str) -> None:
    parent = start_server_process(database_url, 0, workers="2", migrate_on_start="false")
    assert parent.wait(timeout=60) == 2
