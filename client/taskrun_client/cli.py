"""`taskrun`: the operator's command line. Tables in a terminal, JSON for scripts.

taskrun list --state RUNNING --tag nightly
taskrun get <id>
taskrun count --state FAILED
taskrun history --hours 24
taskrun set-state <id> CANCELLED --force
taskrun delete <id>
taskrun watch <task-key>...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from taskrun.v1 import filters_pb2, state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError
from taskrun_client.sync_client import TaskRunClient

STATE_TYPES = [v.name.removeprefix("STATE_TYPE_") for v in state_pb2.StateType.DESCRIPTOR.values][
    1:
]
SORTS = [v.name.removeprefix("TASK_RUN_SORT_") for v in filters_pb2.TaskRunSort.DESCRIPTOR.values][
    1:
]
STATE_COLOURS = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "red",
    "RUNNING": "cyan",
    "SCHEDULED": "yellow",
    "PENDING": "blue",
    "CANCELLED": "grey50",
    "CANCELLING": "grey50",
    "PAUSED": "magenta",
}


def state_type(name: str) -> state_pb2.StateType.ValueType:
    return state_pb2.StateType.Value(f"STATE_TYPE_{name.upper()}")


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The task-run filter the common options describe."""
    f = filters_pb2.TaskRunFilter()
    if args.state:
        f.state.type.any.extend(state_type(s) for s in args.state)
    if args.tag:
        f.tags.all.extend(args.tag)
    if args.name:
        f.name.like = args.name
    return {"task_runs": f} if f.ListFields() else {}


def as_json(message: Message | Sequence[Message]) -> str:
    if isinstance(message, Message):
        return json_format.MessageToJson(message)
    return json.dumps([json_format.MessageToDict(m) for m in message], indent=2)


def short_time(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    text: str = ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return text


def state_label(kind: state_pb2.StateType.ValueType, name: str) -> str:
    type_name = state_pb2.StateType.Name(kind).removeprefix("STATE_TYPE_")
    return f"[{STATE_COLOURS.get(type_name, 'white')}]{name or type_name}[/]"


def runs_table(runs: Sequence[Any]) -> Table:
    table = Table(show_lines=False)
    for column in ("id", "name", "task key", "state", "runs", "expected start", "run time"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.id,
            run.name,
            run.task_key,
            state_label(run.state_type, run.state_name),
            str(run.run_count),
            short_time(run.expected_start_time),
            f"{run.estimated_run_time.ToTimedelta().total_seconds():.1f}s",
        )
    return table


def history_chart(intervals: Sequence[Any], width: int = 50) -> Table:
    """One row per bucket: a bar per state, in its colour, scaled to the busiest bucket."""
    busiest = max((sum(s.count_runs for s in i.states) for i in intervals), default=0) or 1
    table = Table(show_header=True, box=None)
    table.add_column("bucket start")
    table.add_column("runs", justify="right")
    table.add_column("by state")
    for interval in intervals:
        bar = ""
        for s in interval.states:
            type_name = state_pb2.StateType.Name(s.state_type).removeprefix("STATE_TYPE_")
            cells = max(1, round(s.count_runs / busiest * width)) if s.count_runs else 0
            bar += f"[{STATE_COLOURS.get(type_name, 'white')}]{'█' * cells}[/]"
        total = sum(s.count_runs for s in interval.states)
        table.add_row(short_time(interval.interval_start), str(total), bar)
    return table


def legend() -> str:
    return "  ".join(f"[{colour}]█[/] {name}" for name, colour in STATE_COLOURS.items())


def run_command(args: argparse.Namespace, client: TaskRunClient, console: Console) -> None:
    json_out = args.output == "json"
    if args.command == "list":
        sort = filters_pb2.TaskRunSort.Value(f"TASK_RUN_SORT_{args.sort}")
        runs = client.read_task_runs(sort=sort, limit=args.limit, **filters(args))
        print(as_json(runs)) if json_out else console.print(runs_table(runs))
    elif args.command == "get":
        run = client.read_task_run(args.id)
        if json_out:
            print(as_json(run))
        else:
            console.print(runs_table([run]))
            for s in client.read_task_run_states(args.id):
                console.print(
                    f"  {short_time(s.timestamp)}  {state_label(s.type, s.name)}  {s.message}"
                )
    elif args.command == "count":
        count = client.count_task_runs(**filters(args))
        print(json.dumps({"count": count}) if json_out else count)
    elif args.command == "history":
        end = datetime.now(UTC)
        start = end - timedelta(hours=args.hours)
        intervals = client.task_run_history(
            start, end, timedelta(seconds=args.interval), **filters(args)
        )
        if json_out:
            print(as_json(intervals))
        else:
            console.print(history_chart(intervals))
            console.print(legend())
    elif args.command == "set-state":
        answer = client.set_task_run_state(
            args.id,
            state_type(args.type),
            force=args.force,
            name=args.name or "",
            message=args.message or "",
        )
        if json_out:
            print(as_json(answer))
        else:
            status = pb.SetStateStatus.Name(answer.status).removeprefix("SET_STATE_STATUS_")
            label = state_label(answer.state.type, answer.state.name)
            console.print(f"{status}: {label} {answer.details.reason}")
    elif args.command == "delete":
        client.delete_task_run(args.id)
        print(json.dumps({"deleted": args.id}) if json_out else f"deleted {args.id}")
    elif args.command == "watch":
        keys = ", ".join(args.keys)
        notice = f"watching {keys} (deliveries are leased to this watcher until it stops)"
        Console(stderr=True).print(notice)  # stderr: stdout stays pure JSON with --output json
        for delivery in client.subscribe_scheduled_tasks(
            args.keys, prefetch=args.prefetch, client_id="taskrun-watch"
        ):
            run = delivery.task_run
            if json_out:
                print(json_format.MessageToJson(delivery, indent=None), flush=True)
            else:
                when = short_time(run.state.timestamp)
                count = delivery.delivery_count
                console.print(f"{when}  {run.id}  {run.task_key}  delivery {count}")


def client_config(args: argparse.Namespace) -> ClientConfig:
    """The connection the global options describe."""

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path is not None else None

    return ClientConfig(
        target=args.target,
        token=args.token,
        tls=bool(args.tls or args.ca_file or args.cert_file),
        root_certificates=read(args.ca_file),
        certificate_chain=read(args.cert_file),
        private_key=read(args.key_file),
        wait_for_ready=False,  # an operator wants "cannot reach" at once, not after a deadline
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="taskrun", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument(
        "--target",
        default=os.environ.get("TASKRUN_TARGET", "127.0.0.1:50051"),
        help="server address (default $TASKRUN_TARGET or %(default)s)",
    )
    top.add_argument(
        "--token",
        default=os.environ.get("TASKRUN_TOKEN"),
        help="bearer token (default $TASKRUN_TOKEN, which keeps it out of the process list)",
    )
    top.add_argument("--tls", action="store_true", help="connect with TLS")
    top.add_argument("--ca-file", type=Path, help="PEM CA bundle to trust (implies --tls)")
    top.add_argument("--cert-file", type=Path, help="client certificate for mTLS (implies --tls)")
    top.add_argument("--key-file", type=Path, help="client private key for mTLS")
    top.add_argument("--output", choices=["table", "json"], default="table")
    sub = top.add_subparsers(dest="command", required=True)

    def with_filters(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--state",
            action="append",
            choices=STATE_TYPES,
            type=str.upper,
            help="state type (repeatable)",
        )
        p.add_argument("--tag", action="append", help="tag the runs must carry (repeatable)")
        p.add_argument("--name", help="name contains (case-insensitive)")
        return p

    listing = with_filters(sub.add_parser("list", help="list task runs"))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--sort", choices=SORTS, type=str.upper, default="ID_DESC")
    sub.add_parser("get", help="one task run and its states").add_argument("id")
    with_filters(sub.add_parser("count", help="count task runs"))
    history = with_filters(sub.add_parser("history", help="runs per state over time, as bars"))
    history.add_argument("--hours", type=float, default=24)
    history.add_argument("--interval", type=float, default=3600, help="bucket width in seconds")
    set_state = sub.add_parser("set-state", help="propose a state (orchestrated unless --force)")
    set_state.add_argument("id")
    set_state.add_argument("type", choices=STATE_TYPES, type=str.upper)
    set_state.add_argument("--name")
    set_state.add_argument("--message")
    set_state.add_argument("--force", action="store_true")
    sub.add_parser("delete", help="delete a task run").add_argument("id")
    watch = sub.add_parser("watch", help="watch deliveries of a subscription")
    watch.add_argument("keys", nargs="+")
    watch.add_argument("--prefetch", type=int, default=1)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    console = Console()
    try:
        config = client_config(args)
    except OSError as error:
        print(f"taskrun: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        sys.exit(2)
    try:
        with TaskRunClient(config) as client:
            run_command(args, client, console)
    except TaskRunError as error:
        print(f"taskrun: {error.code.name}: {error.details}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
