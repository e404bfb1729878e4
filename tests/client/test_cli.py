"""The `taskrun` ops command, run as a real process against the server: its JSON for scripts,
and its tables in a real terminal (a pseudo-terminal 80 columns wide)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sys
import uuid
from typing import Any

from taskrun.v1 import resources_pb2, state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_server.server import RunningServer
from tests.factories import (
    FlowRunStub,
    FlowStub,
    LimitStub,
    TaskRunStub,
    create_flow_run,
    create_run,
    hours,
    now,
    propose,
    scheduled,
    state,
)
from tests.processes import run_cli

T = state_pb2


async def taskrun(server: RunningServer, *args: str) -> tuple[int, str, str]:
    return await run_cli(*args, "--target", f"127.0.0.1:{server.port}")


async def json_of(server: RunningServer, *args: str) -> Any:
    """The command's JSON; the options come after the command, as operators type them."""
    code, out, err = await taskrun(server, *args, "--output", "json")
    assert code == 0, err
    return json.loads(out)


async def in_a_terminal(server: RunningServer, *args: str, columns: int = 80) -> str:
    """The command's output in a real (pseudo-)terminal `columns` wide, colours and all."""
    leader, follower = pty.openpty()
    env = {
        "PATH": "/usr/bin:/bin",
        "COLUMNS": str(columns),
        "LINES": "50",
        "TERM": "xterm-256color",
        "TZ": "UTC",  # the zone the history test expects to see named
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskrun_client.cli", "--target", f"127.0.0.1:{server.port}", *args,
        stdin=follower, stdout=follower, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    chunks: list[bytes] = []
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    await asyncio.wait_for(process.wait(), 30)
    os.close(leader)
    assert process.returncode == 0, b"".join(chunks).decode()
    return b"".join(chunks).decode()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def test_options_go_before_or_after_the_command(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs)
    after = await json_of(fresh_server, "list")
    code, out, err = await run_cli(
        "--output", "json", "--target", f"127.0.0.1:{fresh_server.port}", "list"
    )
    assert code == 0, err
    assert [r["id"] for r in after] == [r["id"] for r in json.loads(out)] == [run.id]


async def test_list_pages_past_two_hundred(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    items = [pb.CreateTaskRunRequest(task_key="bulk", dynamic_key=str(i)) for i in range(260)]
    await task_runs.BatchCreateTaskRuns(pb.BatchCreateTaskRunsRequest(requests=items))
    assert len(await json_of(fresh_server, "list", "--limit", "230")) == 230
    everything = await json_of(fresh_server, "list", "--all", "--task-key", "bulk")
    assert sorted(int(r["dynamicKey"]) for r in everything) == list(range(260))


async def test_list_filters_by_task_key_flow_run_and_time_window(
    task_runs: TaskRunStub,
    flows: FlowStub,
    flow_runs: FlowRunStub,
    fresh_server: RunningServer,
) -> None:
    flow_run = await create_flow_run(flows, flow_runs)
    inside = await create_run(task_runs, task_key="extract", flow_run_id=flow_run.id)
    await create_run(task_runs, task_key="extract")
    await create_run(task_runs, task_key="load", flow_run_id=flow_run.id)
    old = await create_run(task_runs, task_key="old", state=scheduled(now() - hours(5)))
    picked = await json_of(fresh_server, "list", "--task-key", "extract", "--flow-run", flow_run.id)
    assert [r["id"] for r in picked] == [inside.id]
    window = await json_of(fresh_server, "list", "--since", "6h", "--until", "4h")
    assert [r["id"] for r in window] == [old.id]


async def test_ids_are_whole_and_coloured_in_an_80_column_terminal(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    running = await create_run(task_runs, name="a-rather-long-task-run-name-that-will-not-fit")
    await propose(task_runs, running.id, state(T.STATE_TYPE_RUNNING))
    failed = await create_run(task_runs, state=state(T.STATE_TYPE_FAILED))
    shown = await in_a_terminal(fresh_server, "list")
    plain = ANSI.sub("", shown)
    assert running.id in plain and failed.id in plain  # not cut, not wrapped
    assert max(len(line) for line in plain.splitlines()) <= 80
    colours = {m.group(0) for m in ANSI.finditer(shown)}
    assert len(colours) >= 2  # RUNNING and FAILED in colours of their own


async def test_get_shows_the_run_and_its_history_and_accepts_an_id_prefix(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs, name="target", tags=["ops"], labels={"team": "infra"})
    await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    whole = await json_of(fresh_server, "get", run.id[:30])
    assert whole["taskRun"]["name"] == "target"
    assert whole["taskRun"]["tags"] == ["ops"]
    assert whole["taskRun"]["labels"] == {"team": "infra"}
    assert [s["type"] for s in whole["states"]] == ["STATE_TYPE_PENDING", "STATE_TYPE_RUNNING"]
    shown = ANSI.sub("", await in_a_terminal(fresh_server, "get", run.id))
    assert "infra" in shown and "ops" in shown and "Running" in shown


async def test_an_ambiguous_or_unknown_prefix_is_refused(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    first = await create_run(task_runs)
    await create_run(task_runs)
    code, _, err = await taskrun(fresh_server, "get", first.id[:4])
    assert code == 2 and "several ids" in err
    code, _, err = await taskrun(fresh_server, "get", "ffffffff")
    assert code == 2 and "no task run" in err


async def test_set_state_and_delete_a_run(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs, name="target")
    answer = await json_of(fresh_server, "set-state", "RUNNING", run.id)
    assert answer["results"][0]["status"] == "ACCEPT"
    forced = await json_of(fresh_server, "set-state", "PENDING", run.id, "--force")
    assert forced["results"][0]["state"] == "PENDING"
    assert (await json_of(fresh_server, "delete", run.id)) == {"deleted": run.id}
    assert (await json_of(fresh_server, "count"))["count"] == 0


async def test_bulk_cancel_shows_first_asks_and_then_acts(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    tag = f"nightly-{uuid.uuid4().hex[:6]}"
    running = await create_run(task_runs, tags=[tag])
    await propose(task_runs, running.id, state(T.STATE_TYPE_RUNNING))
    waiting = await create_run(task_runs, tags=[tag])
    done = await create_run(task_runs, tags=[tag], state=state(T.STATE_TYPE_COMPLETED))
    await create_run(task_runs, tags=["other"])

    dry = await json_of(fresh_server, "cancel", "--tag", tag, "--dry-run")
    assert "2 task run(s) would be cancelled" in dry["summary"]
    code, _, err = await taskrun(fresh_server, "cancel", "--tag", tag)  # no terminal to ask on
    assert code == 2 and "--yes" in err
    assert (await json_of(fresh_server, "count", "--state", "CANCELLED"))["count"] == 0

    acted = await json_of(fresh_server, "cancel", "--tag", tag, "--yes")
    states = {r["id"]: r["state"] for r in acted["results"]}
    assert states == {running.id: "CANCELLING", waiting.id: "CANCELLED"}
    read = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=done.id))
    assert read.task_run.state_type == T.STATE_TYPE_COMPLETED


async def test_bulk_set_state_by_filter(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    runs = [await create_run(task_runs, task_key="stuck") for _ in range(3)]
    acted = await json_of(
        fresh_server, "set-state", "FAILED", "--task-key", "stuck", "--force", "--yes"
    )
    assert sorted(r["id"] for r in acted["results"]) == sorted(r.id for r in runs)
    assert (await json_of(fresh_server, "count", "--state", "FAILED"))["count"] == 3


async def test_logs_of_a_run(
    task_runs: TaskRunStub, logs: Any, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs)
    await logs.CreateLogs(
        resources_pb2.CreateLogsRequest(
            logs=[resources_pb2.LogCreate(name="t", level=40, message="boom", task_run_id=run.id)]
        )
    )
    assert [line["message"] for line in await json_of(fresh_server, "logs", run.id)] == ["boom"]
    assert "ERROR" in ANSI.sub("", await in_a_terminal(fresh_server, "logs", run.id))


async def test_concurrency_limit_commands(
    limits: LimitStub, task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    (made,) = await json_of(fresh_server, "limits", "set", "db", "3")
    assert made["concurrencyLimit"] == 3
    run = await create_run(task_runs, tags=["db"])
    await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    (held,) = await json_of(fresh_server, "limits", "get", "db")
    assert held["activeSlots"] == [run.id]
    assert [lim["tag"] for lim in await json_of(fresh_server, "limits", "list")] == ["db"]
    (reset,) = await json_of(fresh_server, "limits", "reset", "db")
    assert reset.get("activeSlots", []) == []
    assert await json_of(fresh_server, "limits", "delete", "db") == {"deleted": "db"}


async def test_history_counts_each_state_in_its_colour_with_the_time_zone(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    await create_run(task_runs, state=state(T.STATE_TYPE_COMPLETED))
    await create_run(task_runs, state=state(T.STATE_TYPE_FAILED))
    await create_run(task_runs, state=state(T.STATE_TYPE_FAILED))
    shown = await in_a_terminal(fresh_server, "history", "--since", "2h", columns=120)
    plain = ANSI.sub("", shown)
    assert "Completed 1" in plain and "Failed 2" in plain
    assert "(UTC)" in plain  # the zone the times are in
    buckets = await json_of(fresh_server, "history", "--since", "2h", "--interval", "3600")
    assert sum(int(s["countRuns"]) for b in buckets for s in b.get("states", [])) == 3


async def test_watch_follows_a_run_to_its_end_without_taking_a_lease(
    task_runs: TaskRunStub, fresh_server: RunningServer
) -> None:
    run = await create_run(task_runs, task_key="watched", state=scheduled(now()))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskrun_client.cli", "watch", run.id, "--until-done",
        "--output", "json", "--target", f"127.0.0.1:{fresh_server.port}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    first = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    assert first["stateType"] == "STATE_TYPE_SCHEDULED"
    await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    running = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    assert running["stateType"] == "STATE_TYPE_RUNNING"
    await propose(task_runs, run.id, state(T.STATE_TYPE_COMPLETED))
    rest = [
        json.loads(line)
        for line in (await asyncio.wait_for(process.stdout.read(), 30)).splitlines()
    ]
    assert [r["stateType"] for r in rest] == ["STATE_TYPE_COMPLETED"]
    assert await asyncio.wait_for(process.wait(), 10) == 0
    read = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
    assert read.task_run.delivery_count == 0


async def test_errors_exit_non_zero_and_name_the_field(fresh_server: RunningServer) -> None:
    code, _, err = await taskrun(fresh_server, "limits", "set", "", "3")
    assert code == 1 and "INVALID_ARGUMENT" in err and "tag" in err


async def test_an_unreachable_server_is_named_in_the_message() -> None:
    code, _, err = await run_cli("list", "--target", "127.0.0.1:1")
    assert code == 1 and "cannot reach a taskrun server at 127.0.0.1:1" in err
    assert "TASKRUN_TARGET" in err


async def test_help_shows_the_defaults() -> None:
    code, out, _ = await run_cli("list", "--help")
    assert code == 0
    assert "127.0.0.1:50051" in out and "default: 50" in out and "ID_DESC" in out
