"""Task-run filters from keyword arguments, for the read, count, history and watch calls.

    from taskrun_client import filters
    client.read_task_runs(task_runs=filters.task_runs(state=["FAILED"], tags=["nightly"]))

Criteria combine with AND; each left out is not applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from taskrun.v1 import filters_pb2
from taskrun_client.naming import StateTypeLike, state_type
from taskrun_client.requests import timestamp


def task_runs(
    *,
    state: Sequence[StateTypeLike] = (),
    state_name: Sequence[str] = (),
    tags: Sequence[str] = (),
    name_like: str = "",
    task_key: Sequence[str] = (),
    ids: Sequence[str] = (),
    id_prefix: str = "",
    flow_run_id: Sequence[str] = (),
    background: bool | None = None,
    expected_after: datetime | None = None,
    expected_before: datetime | None = None,
) -> filters_pb2.TaskRunFilter:
    """A TaskRunFilter. `background=True`: only runs without a flow run; False: only runs in
    one. `expected_after`/`before`: the window of their expected start times."""
    f = filters_pb2.TaskRunFilter()
    if state:
        f.state.type.any.extend(state_type(s) for s in state)
    if state_name:
        f.state.name.any.extend(state_name)
    if tags:
        f.tags.all.extend(tags)
    if name_like:
        f.name.like = name_like
    if task_key:
        f.task_key.any.extend(task_key)
    if ids:
        f.id.any.extend(ids)
    if id_prefix:
        f.id.prefix = id_prefix
    if flow_run_id:
        f.flow_run_id.any.extend(flow_run_id)
    if background is not None:
        f.flow_run_id.is_null = background
    if expected_after is not None:
        f.expected_start_time.after.CopyFrom(timestamp(expected_after))
    if expected_before is not None:
        f.expected_start_time.before.CopyFrom(timestamp(expected_before))
    return f
