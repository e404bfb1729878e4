"""What each `taskrun` command does, given its parsed arguments and a client."""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice

from google.protobuf import json_format
from rich.console import Console

from taskrun.v1 import filters_pb2, resources_pb2, state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client import filters
from taskrun_client.cli import render
from taskrun_client.errors import TaskRunError
from taskrun_client.naming import is_terminal, state_type, state_type_name, status_name
from taskrun_client.sync_client import TaskRunClient

Command = Callable[[argparse.Namespace, TaskRunClient, Console], int]


class UsageError(Exception):
    """The operator asked for something that cannot be done as asked (exit code 2)."""


# -- naming runs and windows ---------------------------------------------------------------------


def resolve(client: TaskRunClient, text: str) -> str:
    """A run's id from its id or the first digits of it (a unique prefix)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    found = client.read_task_runs(task_runs=filters.task_runs(id_prefix=text), limit=2)
    if not found:
        raise UsageError(f"no task run's id starts with {text!r}")
    if len(found) > 1:
        raise UsageError(
            f"{text!r} is the start of several ids ({found[0].id}, {found[1].id}, ...): "
            "give more of it"
        )
    return found[0].id


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str) -> datetime:
    """`2h`, `30m`, `7d` (that long ago) or an ISO 8601 time (local unless it names a zone)."""
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = float(relative.group(1)), _UNITS[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30m, 2h, 7d) nor an ISO 8601 time"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def run_filter(args: argparse.Namespace) -> filters_pb2.TaskRunFilter:
    """The task-run filter the common options describe."""
    return filters.task_runs(
        state=args.state or (),
        tags=args.tag or (),
        name_like=args.name or "",
        task_key=args.task_key or (),
        flow_run_id=args.flow_run or (),
        expected_after=args.since,
        expected_before=args.until,
    )


def matching(args: argparse.Namespace, client: TaskRunClient) -> Iterator[task_run_pb2.TaskRun]:
    """The runs named by id (or id prefix) if any were, else every run the filters match."""
    if getattr(args, "ids", None):
        for text in args.ids:
            yield client.read_task_run(resolve(client, text))
        return
    yield from client.iter_task_runs(task_runs=run_filter(args), sort="EXPECTED_START_TIME_DESC")


# -- reading -------------------------------------------------------------------------------------


def list_runs(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    runs = client.iter_task_runs(
        task_runs=run_filter(args), sort=args.sort, page_size=min(max(args.limit, 1), 200)
    )
    chosen = list(runs if args.all else islice(runs, args.limit))
    if args.output == "json":
        print(render.as_json(chosen))
    else:
        console.print(render.runs_table(chosen))
    return 0


def get_run(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    run = client.read_task_run(resolve(client, args.id))
    states = client.read_task_run_states(run.id)
    if args.output == "json":
        out = {"taskRun": render.as_dict(run), "states": [render.as_dict(s) for s in states]}
        print(render.as_json(out))
    else:
        for part in render.run_details(run, states):
            console.print(part)
    return 0


def count_runs(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    count = client.count_task_runs(task_runs=run_filter(args))
    print(json.dumps({"count": count}) if args.output == "json" else count)
    return 0


def history(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    end = args.until or datetime.now(UTC)
    start = args.since or end - timedelta(hours=24)
    intervals = client.task_run_history(
        start, end, timedelta(seconds=args.interval), task_runs=run_filter(args)
    )
    if args.output == "json":
        print(render.as_json(intervals))
    else:
        console.print(render.history_table(intervals))
        console.print(render.legend())
    return 0


def logs(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    run_id = resolve(client, args.id)
    lines: list[resources_pb2.Log] = []
    while True:
        page = client.read_logs(task_run_id=run_id, offset=len(lines), limit=200)
        lines += page.logs
        if not page.logs or (len(page.logs) < 200 and not page.truncated):
            break
    if args.output == "json":
        print(render.as_json(lines))
    else:
        console.print(render.logs_table(lines))
    return 0


def watch(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    """State changes as they happen, pushed by the server; takes no lease on anything."""
    if args.ids:
        ids = [resolve(client, text) for text in args.ids]
        stream = client.watch_task_runs(ids, until_terminal=args.until_done)
    else:
        if args.until_done:
            raise UsageError("--until-done needs run ids: a filter has no end")
        stream = client.watch_task_runs(task_runs=run_filter(args))
    for run in stream:
        if args.output == "json":
            print(json_format.MessageToJson(run, indent=None), flush=True)
        else:
            when = render.local_time(run.state.timestamp)
            console.print(when, run.id, run.name, render.state_text(run.state_type, run.state_name))
    return 0


# -- changing ------------------------------------------------------------------------------------


def set_state(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    wanted = state_type(args.type)

    def proposal(_: task_run_pb2.TaskRun) -> state_pb2.StateCreate | None:
        return state_pb2.StateCreate(
            type=wanted, name=args.state_name or "", message=args.message or ""
        )

    return _bulk(args, client, console, f"set to {state_type_name(wanted)}", proposal)


def cancel(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    """RUNNING runs go to CANCELLING (their worker stops them and ends them CANCELLED); runs
    that have not started go straight to CANCELLED; finished runs are left alone."""

    def proposal(run: task_run_pb2.TaskRun) -> state_pb2.StateCreate | None:
        if is_terminal(run.state_type) or run.state_type == state_pb2.STATE_TYPE_CANCELLING:
            return None
        kind = (
            state_pb2.STATE_TYPE_CANCELLING
            if run.state_type == state_pb2.STATE_TYPE_RUNNING
            else state_pb2.STATE_TYPE_CANCELLED
        )
        return state_pb2.StateCreate(type=kind, message=args.message or "Cancelled by an operator")

    return _bulk(args, client, console, "cancelled", proposal)


def delete(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    run_id = resolve(client, args.id)
    client.delete_task_run(run_id)
    print(json.dumps({"deleted": run_id}) if args.output == "json" else f"deleted {run_id}")
    return 0


BATCH = 1000


def _bulk(
    args: argparse.Namespace,
    client: TaskRunClient,
    console: Console,
    verb: str,
    proposal: Callable[[task_run_pb2.TaskRun], state_pb2.StateCreate | None],
) -> int:
    """Propose a state for every run named or matched: shown first, then confirmed (unless
    --yes), or only shown with --dry-run. Several runs, or a filter, always ask."""
    if not args.ids and not _filtered(args):
        raise UsageError("name runs by id, or select them with filters (--state, --tag, ...)")
    plan = [(run, p) for run in matching(args, client) if (p := proposal(run)) is not None]
    runs = [run for run, _ in plan]
    if args.output != "json":
        console.print(render.runs_table(runs[:20]))
        if len(runs) > 20:
            console.print(f"... and {len(runs) - 20} more")
    if not plan:
        _report(args, console, [], f"no task run to be {verb}")
        return 0
    if args.dry_run:
        _report(args, console, [], f"dry run: {len(plan)} task run(s) would be {verb}")
        return 0
    asking = len(plan) > 1 or not args.ids
    if asking and not args.yes and not _confirm(f"{len(plan)} task run(s) to be {verb}. Go on?"):
        _report(args, console, [], "nothing changed")
        return 1
    results: list[dict[str, str]] = []
    for start in range(0, len(plan), BATCH):
        chunk = plan[start : start + BATCH]
        answers = client.batch_set_task_run_states(
            [
                pb.SetTaskRunStateRequest(task_run_id=run.id, state=p, force=args.force)
                for run, p in chunk
            ]
        )
        for (run, _), answer in zip(chunk, answers, strict=True):
            results.append(_result(run, answer))
    accepted = sum(r["status"] == "ACCEPT" for r in results)
    _report(args, console, results, f"{accepted} of {len(results)} task run(s) {verb}")
    return 0 if accepted == len(results) else 1


def _filtered(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name, None)
        for name in ("state", "tag", "name", "task_key", "flow_run", "since", "until")
    )


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("not asking on a non-interactive input: pass --yes (or --dry-run)")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _result(run: task_run_pb2.TaskRun, answer: pb.BatchSetTaskRunStateResult) -> dict[str, str]:
    if answer.HasField("error"):
        error = TaskRunError.from_batch_item(answer.error)
        return {"id": run.id, "status": error.code.name, "reason": error.details}
    response = answer.response
    return {
        "id": run.id,
        "status": status_name(response.status),
        "state": state_type_name(response.state.type),
        "reason": response.details.reason,
    }


def _report(
    args: argparse.Namespace, console: Console, results: list[dict[str, str]], summary: str
) -> None:
    if args.output == "json":
        print(json.dumps({"summary": summary, "results": results}, indent=2))
        return
    for r in results:
        if r["status"] != "ACCEPT":
            console.print(f"  {r['id']}: {r['status']} {r.get('reason', '')}")
    console.print(summary)


# -- concurrency limits --------------------------------------------------------------------------


def limits(args: argparse.Namespace, client: TaskRunClient, console: Console) -> int:
    action = args.limits_action
    if action == "list":
        found = client.read_concurrency_limits(limit=200)
    elif action == "set":
        found = [client.create_concurrency_limit(args.tag, args.limit).concurrency_limit]
    elif action == "get":
        found = [client.read_concurrency_limit(args.tag)]
    elif action == "reset":
        found = [client.reset_concurrency_limit(args.tag)]
    else:
        client.delete_concurrency_limit(args.tag)
        print(json.dumps({"deleted": args.tag}) if args.output == "json" else f"deleted {args.tag}")
        return 0
    if args.output == "json":
        print(render.as_json(found))
    else:
        console.print(render.limits_table(found))
    return 0


COMMANDS: dict[str, Command] = {
    "list": list_runs,
    "get": get_run,
    "count": count_runs,
    "history": history,
    "logs": logs,
    "watch": watch,
    "set-state": set_state,
    "cancel": cancel,
    "delete": delete,
    "limits": limits,
}
