"""How the CLI shows things: tables sized for an 80-column terminal (ids always whole, so they
can be copied), a colour per state type, local times with their zone named, or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich import box
from rich.table import Table
from rich.text import Text

from taskrun.v1 import concurrency_limits_pb2, resources_pb2, state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.naming import STATE_TYPES, state_type_name

STATE_COLOURS = {
    "SCHEDULED": "yellow",
    "PENDING": "blue",
    "RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "grey62",
    "CRASHED": "magenta",
    "PAUSED": "dark_orange",
    "CANCELLING": "medium_purple",
}
"""One colour per state type, none shared."""
assert set(STATE_COLOURS) == set(STATE_TYPES) and len(set(STATE_COLOURS.values())) == 9


def as_json(value: Message | Sequence[Message] | dict[str, Any]) -> str:
    """Proto3's JSON mapping (camelCase fields, enums by name, 64-bit integers as strings)."""
    if isinstance(value, Message):
        return json_format.MessageToJson(value)
    if isinstance(value, dict):
        return json.dumps(value, indent=2)
    return json.dumps([json_format.MessageToDict(m) for m in value], indent=2)


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def zone() -> str:
    """The local time zone's name, as shown beside every time."""
    return datetime.now().astimezone().tzname() or "local"


def local_time(ts: Timestamp, *, seconds: bool = True) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    moment = ts.ToDatetime(tzinfo=UTC).astimezone()
    return moment.strftime("%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def state_text(kind: state_pb2.StateType.ValueType, name: str = "") -> Text:
    type_name = state_type_name(kind)
    return Text(name or type_name, style=STATE_COLOURS.get(type_name, ""))


def runs_table(runs: Iterable[task_run_pb2.TaskRun]) -> Table:
    """id (whole), name, state, expected start, run time: 80 columns hold it."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("name", overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("state", no_wrap=True)
    table.add_column(f"expected ({zone()})", no_wrap=True)
    table.add_column("ran", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.id,
            run.name,
            state_text(run.state_type, run.state_name),
            local_time(run.expected_start_time, seconds=False),
            _seconds(run.estimated_run_time.ToTimedelta().total_seconds()),
        )
    return table


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    return f"{value:.1f}s"


def run_details(run: task_run_pb2.TaskRun, states: Sequence[state_pb2.State]) -> list[Any]:
    """Everything an operator asks of one run: its fields, then its state history."""
    fields = Table(box=None, show_header=False, padding=(0, 1))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column()
    policy = run.empirical_policy
    retries = policy.retries if policy.HasField("retries") else policy.max_retries
    delays = ", ".join(f"{d:g}s" for d in policy.retry_delay) or "none"
    state = Text.assemble(state_text(run.state_type, run.state_name), f"  {run.state.message}")
    labels = json_format.MessageToDict(run.labels)
    lease = f", leased to {run.lease_owner}" if run.lease_owner else ""
    rows: list[tuple[str, Any]] = [
        ("id", run.id),
        ("name", run.name),
        ("task key", f"{run.task_key}  (dynamic key {run.dynamic_key})"),
        ("flow run", run.flow_run_id or "none (a background run)"),
        ("state", state),
        ("tags", ", ".join(run.tags) or "none"),
        ("labels", json.dumps(labels) if labels else "none"),
        (f"created ({zone()})", local_time(run.created)),
        ("expected start", local_time(run.expected_start_time)),
        ("started", local_time(run.start_time)),
        ("ended", local_time(run.end_time)),
        ("run time", _seconds(run.estimated_run_time.ToTimedelta().total_seconds())),
        ("runs", f"{run.run_count} (retries {retries}, delays {delays})"),
        ("deliveries", f"{run.delivery_count}{lease}"),
    ]
    for label, value in rows:
        fields.add_row(label, value)
    history = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="states", title_justify="left")
    history.add_column(f"when ({zone()})", no_wrap=True)
    history.add_column("state", no_wrap=True)
    history.add_column("message", overflow="fold")
    for s in states:
        history.add_row(local_time(s.timestamp), state_text(s.type, s.name), s.message)
    return [fields, history]


def history_table(intervals: Sequence[pb.HistoryInterval], width: int = 30) -> Table:
    """A row per bucket: its start, its count, the count per state, and a bar of the states in
    their colours, scaled to the busiest bucket."""
    busiest = max((sum(s.count_runs for s in i.states) for i in intervals), default=0) or 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(f"bucket start ({zone()})", no_wrap=True)
    table.add_column("runs", justify="right")
    table.add_column("by state")
    table.add_column("", no_wrap=True)
    for interval in intervals:
        counts = Text()
        bar = Text()
        for s in interval.states:
            colour = STATE_COLOURS.get(state_type_name(s.state_type), "")
            counts.append(
                f"{s.state_name or state_type_name(s.state_type)} {s.count_runs}  ", colour
            )
            bar.append("█" * max(1, round(s.count_runs / busiest * width)), colour)
        total = sum(s.count_runs for s in interval.states)
        table.add_row(local_time(interval.interval_start, seconds=False), str(total), counts, bar)
    return table


def legend() -> Text:
    text = Text()
    for name, colour in STATE_COLOURS.items():
        text.append("█ ", colour).append(f"{name}  ")
    return text


def limits_table(found: Iterable[concurrency_limits_pb2.ConcurrencyLimit]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("tag", "limit", "in use", "held by"):
        table.add_column(column, overflow="fold")
    for limit in found:
        held = "\n".join(limit.active_slots)
        table.add_row(limit.tag, str(limit.concurrency_limit), str(len(limit.active_slots)), held)
    return table


def logs_table(logs: Iterable[resources_pb2.Log]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(f"when ({zone()})", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("logger", no_wrap=True, max_width=20, overflow="ellipsis")
    table.add_column("message", overflow="fold")
    for log in logs:
        table.add_row(local_time(log.timestamp), _level(log.level), log.name, log.message)
    return table


def _level(value: int) -> str:
    names = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
    return names.get(value, str(value))
