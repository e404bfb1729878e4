"""Queries on task runs. Every function runs inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    TextClause,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Integer

from taskrun_server.database.tables import log, task_run, task_run_state
from taskrun_server.domain.filters import TaskRunQuery, TaskRunSort
from taskrun_server.domain.states import State, StateType
from taskrun_server.domain.task_runs import StoredTaskRun, TaskRun
from taskrun_server.repository.driver_statements import DriverStatement
from taskrun_server.repository.filters import task_run_order_by, task_run_where
from taskrun_server.repository.kept_statements import KEPT_STATEMENTS
from taskrun_server.repository.rows import (
    RUN_COLUMNS,
    STATE_PREFIX,
    state_columns_labelled,
    state_from_row,
    state_values,
    stored_values,
    task_run_from_row,
    task_run_values,
)
from taskrun_server.repository.tally import (
    count_statement,
    counts_by_state_statement,
    tallied_count,
)

IDEMPOTENCY_KEY = ["flow_run_id", "task_key", "dynamic_key"]


_WITH_STATE = task_run.outerjoin(task_run_state, task_run_state.c.id == task_run.c.state_id)
_SELECT_TASK_RUNS = select(task_run, *state_columns_labelled).select_from(_WITH_STATE)
_SELECT_TASK_RUN_SUMMARIES = select(
    *[c for c in task_run.c if c.name != "parameters"],
    *[c for c in state_columns_labelled if c.name != f"{STATE_PREFIX}data"],
).select_from(_WITH_STATE)


def select_task_runs(*, bulky: bool = True) -> Select[tuple[object, ...]]:
    """task_run columns plus its current state's, prefixed. Built once; callers add clauses
    (generatively, so the shared base is never modified). Without `bulky`, the parameters and
    the state's data are left out: what a list read returns unless asked for everything."""
    return _SELECT_TASK_RUNS if bulky else _SELECT_TASK_RUN_SUMMARIES


def _build_insert_run_with_state() -> Select[int]:
    """INSERT a run ON CONFLICT DO NOTHING, and its first state only if the run went in.

    Built once: every create executes the same statement object with new parameters, so
    SQLAlchemy neither rebuilds nor re-keys it (that alone was most of a create's CPU).
    """
    run_values = {
        name: bindparam(f"run_{name}", type_=task_run.c[name].type) for name in RUN_COLUMNS
    }
    new_run = (
        pg_insert(task_run)
        .values(run_values)
        .on_conflict_do_nothing(index_elements=IDEMPOTENCY_KEY)
        .returning(task_run.c.id)
        .cte("new_run")
    )
    state_columns = [c.name for c in task_run_state.c]
    state_values_select = select(
        *[bindparam(f"state_{c.name}", type_=c.type).label(c.name) for c in task_run_state.c]
    ).select_from(new_run)
    new_state = (
        insert(task_run_state)
        .from_select(state_columns, state_values_select)
        .returning(task_run_state.c.id)
        .cte("new_state")
    )
    return select(func.count()).select_from(new_state)


_INSERT_RUN_WITH_STATE = DriverStatement(_build_insert_run_with_state())


async def insert_task_run(conn: AsyncConnection, run: TaskRun, first_state: State) -> bool:
    """Insert a run and its first state in one statement, unless its key is taken.

    Returns False, inserting nothing, when a run with the same (flow_run_id, task_key,
    dynamic_key) exists. The unique index arbitrates, so concurrent creators of one key
    produce one row: the losers wait for the winner's commit and then see the conflict.
    One statement is atomic on its own, so callers may run it in autocommit mode: one round
    trip to Postgres on the hot path of every create.
    """
    params = {f"run_{k}": v for k, v in task_run_values(run).items()}
    params |= {f"state_{k}": v for k, v in state_values(first_state).items()}
    return bool(await _INSERT_RUN_WITH_STATE.scalar(conn, params))


def _build_insert_many(table: Table, conflict: str) -> TextClause:
    """INSERT rows given as one JSON array: one parameter however many rows, so the statement
    text is fixed and Postgres parses it once per connection. (Multi-row VALUES would send, and
    psycopg would re-scan, a statement of 30,000 placeholders for every thousand runs: most of
    a batch's CPU.) Postgres builds each row from its JSON object as the column types say."""
    columns = ", ".join(c.name for c in table.c)
    return text(
        f"INSERT INTO {table.name} ({columns}) SELECT {columns} "
        f"FROM jsonb_populate_recordset(NULL::{table.name}, CAST(:rows AS jsonb)) {conflict}"
    )


_INSERT_RUNS = DriverStatement(
    _build_insert_many(
        task_run, f"ON CONFLICT ({', '.join(IDEMPOTENCY_KEY)}) DO NOTHING RETURNING id"
    )
)
_INSERT_STATES = DriverStatement(_build_insert_many(task_run_state, ""))


def _json_value(value: object) -> object:
    """How a column value that JSON cannot hold is written so that Postgres reads it back
    (orjson writes datetimes and UUIDs itself)."""
    if isinstance(value, timedelta):
        return f"{value.total_seconds()} seconds"
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _json_rows(rows: list[dict[str, object]]) -> str:
    return orjson.dumps(rows, default=_json_value).decode()


def _key_order(item: tuple[StoredTaskRun, State]) -> tuple[str, str, str]:
    run = item[0]
    return (str(run.flow_run_id or ""), run.task_key, run.dynamic_key)


async def insert_task_runs(
    conn: AsyncConnection, runs: Sequence[tuple[StoredTaskRun, State]]
) -> set[uuid.UUID]:
    """Insert many runs with their first states (in the caller's transaction), skipping runs
    whose key is taken. Returns the ids that went in. Two statements however many runs; a key
    repeated inside the batch goes in once (its first run), as the unique index arbitrates
    between the rows of one statement too.

    Rows go in in key order: two transactions inserting the same new keys wait for each other's
    rows on the unique index, and in different orders each would hold a key the other waits
    for (a deadlock, which Postgres breaks by failing one)."""
    if not runs:
        return set()
    in_key_order = sorted(runs, key=_key_order)  # stable: a repeated key keeps its first run
    rows = _json_rows([stored_values(run) for run, _ in in_key_order])
    ids = {row["id"] for row in await _INSERT_RUNS.rows(conn, {"rows": rows})}
    states = [state_values(state) for run, state in runs if run.id in ids]
    if states:
        await _INSERT_STATES.execute(conn, {"rows": _json_rows(states)})
    return ids


async def read_task_runs_by_keys(
    conn: AsyncConnection, keys: Sequence[tuple[uuid.UUID | None, str, str]]
) -> dict[tuple[uuid.UUID | None, str, str], TaskRun]:
    """The runs holding these (flow_run_id, task_key, dynamic_key) keys, by key. A missing
    flow run id means a run without one (the key's NULL matches NULL, as the index says)."""
    if not keys:
        return {}
    in_flow_runs = [k for k in keys if k[0] is not None]
    alone = [
        (task_key, dynamic_key)
        for flow_run_id, task_key, dynamic_key in keys
        if flow_run_id is None
    ]
    matches: list[ColumnElement[bool]] = []
    if in_flow_runs:
        matches.append(
            tuple_(task_run.c.flow_run_id, task_run.c.task_key, task_run.c.dynamic_key).in_(
                in_flow_runs
            )
        )
    if alone:
        matches.append(
            and_(
                task_run.c.flow_run_id.is_(None),
                tuple_(task_run.c.task_key, task_run.c.dynamic_key).in_(alone),
            )
        )
    rows = (await conn.execute(select_task_runs().where(or_(*matches)))).mappings()
    found = (task_run_from_row(row) for row in rows)
    return {(run.flow_run_id, run.task_key, run.dynamic_key): run for run in found}


def _build_store_transition() -> Update:
    """INSERT the new state and UPDATE the run's bookkeeping columns, in one statement."""
    new_state = (
        insert(task_run_state)
        .values({c.name: bindparam(f"state_{c.name}", type_=c.type) for c in task_run_state.c})
        .returning(task_run_state.c.id)
        .cte("new_state")
    )
    return (
        update(task_run)
        .where(task_run.c.id == bindparam("run_id", type_=task_run.c.id.type))
        .values({name: bindparam(f"run_{name}", type_=task_run.c[name].type) for name in _MUTABLE})
        .add_cte(new_state)
    )


_MUTABLE = (
    "updated",
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "flow_run_run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
    "lease_id",
    "lease_owner",
    "lease_expires_at",
    "execution_deadline",
    "lease_renewed_at",
)
"""The run columns orchestration changes; everything else is fixed at creation or by rename
(or, for delivery_count, by a delivery)."""

_STORE_TRANSITION = DriverStatement(_build_store_transition())


async def store_transition(conn: AsyncConnection, run: TaskRun, state: State) -> None:
    """Write a state and the run's bookkeeping as one statement (one round trip)."""
    params = {f"run_{name}": value for name, value in _mutable_values(run).items()}
    params |= {f"state_{k}": v for k, v in state_values(state).items()}
    await _STORE_TRANSITION.execute(conn, params)


def _build_store_transitions() -> TextClause:
    """INSERT many states and UPDATE their runs' bookkeeping, in one statement of fixed text:
    rows travel as two JSON arrays (see `_build_insert_many`)."""
    state_columns = ", ".join(c.name for c in task_run_state.c)
    assignments = ", ".join(f"{name} = r.{name}" for name in _MUTABLE)
    return text(
        f"WITH new_states AS (INSERT INTO task_run_state ({state_columns}) "
        f"SELECT {state_columns} FROM jsonb_populate_recordset(NULL::task_run_state, "
        "CAST(:states AS jsonb))) "
        f"UPDATE task_run SET {assignments} "
        "FROM jsonb_populate_recordset(NULL::task_run, CAST(:runs AS jsonb)) AS r "
        "WHERE task_run.id = r.id"
    )


_STORE_TRANSITIONS = DriverStatement(_build_store_transitions())


async def store_transitions(conn: AsyncConnection, stored: Sequence[tuple[TaskRun, State]]) -> None:
    """Write many states and their runs' bookkeeping in one statement. A run may appear once:
    its row takes the values of the run given."""
    if len(stored) == 1:
        await store_transition(conn, *stored[0])
        return
    runs = [_mutable_values(run) for run, _ in stored]
    states = [state_values(state) for _, state in stored]
    await _STORE_TRANSITIONS.execute(conn, {"states": _json_rows(states), "runs": _json_rows(runs)})


def _mutable_values(run: TaskRun) -> dict[str, object]:
    """The run's id and the columns orchestration changes, as they are to be written."""
    values = task_run_values(run)
    return {name: values[name] for name in ("id", *_MUTABLE)}


def _locking(*, skip_locked: bool) -> Select[tuple[object, ...]]:
    """The runs named by `ids`, locked in id order, outer-joined to their current states.

    The lock is taken in a subquery and the state joined outside it. A transaction that waited
    for a lock gets the run's newest row (Postgres re-reads a locked row once its locker
    commits) but reads other tables from its older snapshot: if the locker stored a new state,
    the join finds nothing for it, and `lock_task_runs` reads those states again, in a statement
    of its own (a new snapshot). Uncontended, one statement does it all.
    """
    ids = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
    locked = (
        select(task_run)
        .where(task_run.c.id == func.any(ids))
        .order_by(task_run.c.id)
        .with_for_update(skip_locked=skip_locked)
        .subquery("locked")
    )
    states = task_run_state.c
    return select(locked, *[c.label(f"{STATE_PREFIX}{c.name}") for c in states]).select_from(
        locked.outerjoin(task_run_state, states.id == locked.c.state_id)
    )


_LOCK_TASK_RUNS = {skip: DriverStatement(_locking(skip_locked=skip)) for skip in (False, True)}
_CURRENT_STATES = (
    select(task_run_state)
    .join(task_run, task_run.c.state_id == task_run_state.c.id)
    .where(task_run.c.id == func.any(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))))
)


async def lock_task_runs(
    conn: AsyncConnection, task_run_ids: Collection[uuid.UUID], *, skip_locked: bool = False
) -> dict[uuid.UUID, TaskRun]:
    """Many runs, row-locked until commit, with their current states as of the lock, by id.
    Runs that do not exist (or, with `skip_locked`, that another transaction holds) are absent.
    Locked in id order, so two transactions locking overlapping sets cannot deadlock."""
    ids = sorted(set(task_run_ids))
    rows = await _LOCK_TASK_RUNS[skip_locked].rows(conn, {"ids": ids})
    runs = {run.id: run for run in (task_run_from_row(row) for row in rows)}
    unseen = [run.id for run in runs.values() if run.state_id is not None and run.state is None]
    if unseen:  # we waited for a locker that stored a state our snapshot predates
        for row in (await conn.execute(_CURRENT_STATES, {"ids": unseen})).mappings():
            state = state_from_row(row)
            runs[state.task_run_id].state = state
    return runs


_READ_TASK_RUN = DriverStatement(
    select_task_runs().where(task_run.c.id == bindparam("id", type_=task_run.c.id.type))
)


async def read_task_run(conn: AsyncConnection, task_run_id: uuid.UUID) -> TaskRun | None:
    """One run with its current state."""
    rows = await _READ_TASK_RUN.rows(conn, {"id": task_run_id})
    return task_run_from_row(rows[0]) if rows else None


async def read_task_run_by_key(
    conn: AsyncConnection, flow_run_id: uuid.UUID | None, task_key: str, dynamic_key: str
) -> TaskRun | None:
    flow_run_match = (
        task_run.c.flow_run_id.is_(None)
        if flow_run_id is None
        else task_run.c.flow_run_id == flow_run_id
    )
    stmt = select_task_runs().where(
        flow_run_match, task_run.c.task_key == task_key, task_run.c.dynamic_key == dynamic_key
    )
    row = (await conn.execute(stmt)).mappings().one_or_none()
    return task_run_from_row(row) if row is not None else None


def _stored_columns(*, bulky: bool) -> list[ColumnElement[Any]]:
    """The columns of a StoredTaskRun, in its order; without `bulky`, NULL for the run's
    parameters and its state's data."""
    state = task_run_state.c
    from_state = {"state_message": state.message, "state_details": state.state_details}
    from_state["state_data"] = state.data
    left_out = set() if bulky else {"parameters", "state_data"}
    return [
        null().label(name)
        if name in left_out
        else (task_run.c[name] if name in task_run.c else from_state[name])
        for name in StoredTaskRun._fields
    ]


_SELECT_STORED = {
    bulky: select(*_stored_columns(bulky=bulky)).select_from(_WITH_STATE) for bulky in (False, True)
}


def _reading(query: TaskRunQuery, sort: TaskRunSort, *, bulky: bool) -> DriverStatement:
    """The statement that reads `query`'s runs in `sort` order, kept per question (see
    `kept_statements`) with the page's limit and offset as parameters, and run by psycopg
    alone (see `driver_statements`): building the statement, its cache key and SQLAlchemy's
    row processing had been a sixth of a read's server CPU."""

    def build() -> DriverStatement:
        return DriverStatement(
            _SELECT_STORED[bulky]
            .where(*task_run_where(query))
            .order_by(*task_run_order_by(sort))
            .limit(bindparam("limit", type_=Integer))
            .offset(bindparam("offset", type_=Integer))
        )

    return KEPT_STATEMENTS.get(("read", sort, bulky), query, build)


async def read_task_runs(
    conn: AsyncConnection,
    query: TaskRunQuery,
    *,
    sort: TaskRunSort,
    limit: int,
    offset: int,
    bulky: bool = False,
) -> list[StoredTaskRun]:
    """Matching runs as stored: a tuple per row, no object per field (see StoredTaskRun)."""
    statement = _reading(query, sort, bulky=bulky)
    return await statement.records(conn, {"limit": limit, "offset": offset}, StoredTaskRun._make)


async def read_task_runs_among(
    conn: AsyncConnection,
    task_run_ids: Collection[uuid.UUID],
    query: TaskRunQuery | None = None,
    *,
    bulky: bool = False,
) -> dict[uuid.UUID, StoredTaskRun]:
    """These runs, as stored, by id; with `query`, only those it also matches. Missing ones
    are absent."""
    ids = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
    stmt = _SELECT_STORED[bulky].where(task_run.c.id == func.any(ids))
    if query is not None:
        stmt = stmt.where(*task_run_where(query))
    rows = await conn.execute(stmt, {"ids": list(task_run_ids)})
    return {row.id: StoredTaskRun._make(row) for row in rows}


@dataclass(frozen=True, slots=True)
class _CountPlan:
    """How one query is counted: its statement (over the tally, or over the runs when the
    tally cannot answer), and the runs at a window's partial hours, counted beside the tally's
    whole hours. Kept per query (`kept_statements`): building it was a quarter of a count's
    server CPU. Its statement is run by psycopg alone (`driver_statements`)."""

    statement: DriverStatement
    edges: list[TaskRunQuery]


def _count_plan(query: TaskRunQuery, *, by_state: bool) -> _CountPlan:
    def build() -> _CountPlan:
        tallied = tallied_count(query)
        if tallied is None:
            return _CountPlan(DriverStatement(_runs_count_statement(query, by_state=by_state)), [])
        if by_state:
            return _CountPlan(DriverStatement(counts_by_state_statement(tallied)), tallied.edges)
        return _CountPlan(DriverStatement(count_statement(tallied)), tallied.edges)

    return KEPT_STATEMENTS.get(("count", by_state), query, build)


def _runs_count_statement(query: TaskRunQuery, *, by_state: bool) -> Select[Any]:
    if not by_state:
        return select(func.count()).select_from(task_run).where(*task_run_where(query))
    return (
        select(task_run.c.state_type, func.count())
        .where(task_run.c.state_type.is_not(None), *task_run_where(query))
        .group_by(task_run.c.state_type)
    )


async def count_task_runs(conn: AsyncConnection, query: TaskRunQuery) -> int:
    """From the tally when the query filters on nothing but states and tags (a sum over a few
    thousand keys, however many runs); otherwise over the runs."""
    plan = _count_plan(query, by_state=False)
    total = int(await plan.statement.scalar(conn, {}))
    for edge in plan.edges:
        statement = _runs_count_statement(edge, by_state=False)
        total += int((await conn.execute(statement)).scalar_one())
    return total


async def count_task_runs_by_state(
    conn: AsyncConnection, query: TaskRunQuery
) -> dict[StateType, int]:
    """How many runs match, per state type (types with none left out); from the tally when it
    can answer, as `count_task_runs`."""
    plan = _count_plan(query, by_state=True)
    counted = list(await plan.statement.records(conn, {}, tuple))
    for edge in plan.edges:
        counted += await conn.execute(_runs_count_statement(edge, by_state=True))
    counts: dict[StateType, int] = {}
    for value, count in counted:
        state_type = StateType(value)
        counts[state_type] = counts.get(state_type, 0) + int(count)
    return {state_type: count for state_type, count in counts.items() if count}


async def update_task_run_name(
    conn: AsyncConnection, task_run_id: uuid.UUID, name: str, now: datetime
) -> bool:
    """Rename a run; False when it does not exist."""
    stmt = (
        update(task_run)
        .where(task_run.c.id == task_run_id)
        .values(name=name, updated=now)
        .returning(task_run.c.id)
    )
    return (await conn.execute(stmt)).first() is not None


async def delete_task_run(conn: AsyncConnection, task_run_id: uuid.UUID) -> bool:
    """Delete a run, its states (by cascade) and its logs; False when it does not exist."""
    deleted = await conn.execute(
        delete(task_run).where(task_run.c.id == task_run_id).returning(task_run.c.id)
    )
    if deleted.first() is None:
        return False
    await conn.execute(delete(log).where(log.c.task_run_id == task_run_id))
    return True


async def task_run_exists(conn: AsyncConnection, task_run_id: uuid.UUID) -> bool:
    stmt = select(task_run.c.id).where(task_run.c.id == task_run_id)
    return (await conn.execute(stmt)).first() is not None
