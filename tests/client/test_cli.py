"""The `taskrun` ops command, run as a real process against the server."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from taskrun.v1 import state_pb2
from taskrun_server.server import RunningServer
from tests.factories import TaskRunStub, create_run, now, scheduled
from tests.processes import run_cli


async def taskrun(server: RunningServer, *args: str) -> tuple[int, str, str]:
    return await run_cli("--target", f"127.0.0.1:{server.port}", *args)


async def json_of(server: RunningServer, *args: str) -> Any:
    code, out, err = await taskrun(server, "--output", "json", *args)
    assert code == 0, err
    return json.loads(out)


async def test_list_filters_by_state_and_tag(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    wanted = await create_run(task_runs, name="wanted", tags=["ops"])
    await create_run(task_runs, name="other")
    listed = await json_of(fresh_server, "list", "--tag", "ops", "--state", "pending")
    assert [run["id"] for run in listed] == [wanted.id]


async def test_table_output_shows_the_runs(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    await create_run(task_runs, name="visible-run")
    code, out, _ = await taskrun(fresh_server, "list")
    assert code == 0 and "visible-run" in out and "Pending" in out


async def test_get_count_set_state_and_delete(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs, name="target")
    assert (await json_of(fresh_server, "get", run.id))["name"] == "target"
    assert (await json_of(fresh_server, "count", "--state", "PENDING"))["count"] == 1
    answer = await json_of(fresh_server, "set-state", run.id, "RUNNING")
    assert answer["status"] == "SET_STATE_STATUS_ACCEPT"
    forced = await json_of(fresh_server, "set-state", run.id, "PENDING", "--force")
    assert forced["status"] == "SET_STATE_STATUS_ACCEPT"
    assert (await json_of(fresh_server, "delete", run.id)) == {"deleted": run.id}
    assert (await json_of(fresh_server, "count"))["count"] == 0


async def test_history_draws_bars_per_state(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    await create_run(task_runs, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED))
    code, out, _ = await taskrun(fresh_server, "history", "--hours", "2", "--interval", "3600")
    assert code == 0 and "█" in out and "COMPLETED" in out
    buckets = await json_of(fresh_server, "history", "--hours", "2", "--interval", "3600")
    # int64 fields are strings in proto3's JSON mapping.
    assert sum(int(s["countRuns"]) for b in buckets for s in b.get("states", [])) == 1


async def test_errors_exit_non_zero_and_name_the_field(fresh_server: RunningServer) -> None:
    code, _, err = await taskrun(fresh_server, "get", "not-a-uuid")
    assert code == 1 and "INVALID_ARGUMENT" in err and "task_run_id" in err


async def test_watch_prints_deliveries(task_runs: TaskRunStub, fresh_server: RunningServer) -> None:
    run = await create_run(task_runs, task_key="watched", state=scheduled(now()))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskrun_client.cli", "--target", f"127.0.0.1:{fresh_server.port}",
        "--output", "json", "watch", "watched",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert json.loads(line)["taskRun"]["id"] == run.id
    finally:
        process.terminate()
        await process.wait()
