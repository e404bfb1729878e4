"""Driver statements: run by psycopg alone, yet answering as SQLAlchemy did, against Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from sqlalchemy import DateTime, Integer, Text, bindparam, func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.api.errors import status_for
from taskrun_server.database.engine import create_engine
from taskrun_server.database.tables import flow, task_run_state
from taskrun_server.domain.states import StateType
from taskrun_server.repository.driver_statements import DriverStatement
from taskrun_server.settings import Settings

_FLOW_NAMED = DriverStatement(
    select(flow.c.id, flow.c.name).where(flow.c.name == bindparam("name", type_=flow.c.name.type))
)
_NEW_FLOW = DriverStatement(
    insert(flow).values(
        id=bindparam("id", type_=flow.c.id.type),
        name=bindparam("name", type_=flow.c.name.type),
        created=func.now(),
        updated=func.now(),
    )
)
_STATE_TYPE_AND_JSON = DriverStatement(
    select(
        bindparam("type", type_=task_run_state.c.type.type).label("type"),
        bindparam("details", type_=task_run_state.c.state_details.type).label("details"),
        bindparam("data", type_=task_run_state.c.data.type).is_(None).label("data_is_sql_null"),
    )
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, Settings(database_url=database_url))
    yield engine
    await engine.dispose()


async def test_state_types_go_by_value_and_come_back_as_state_types(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        (row,) = await _STATE_TYPE_AND_JSON.rows(
            conn, {"type": StateType.CANCELLING, "details": {"a": [1, None]}, "data": None}
        )
    assert row["type"] is StateType.CANCELLING
    assert row["details"] == {"a": [1, None]}


async def test_values_built_into_the_statement_are_sent_with_it(engine: AsyncEngine) -> None:
    """`column == StateType.SCHEDULED` and literals are binds SQLAlchemy fills itself."""
    statement = DriverStatement(
        select(
            literal(7, Integer).label("seven"),
            (task_run_state.c.type == StateType.SCHEDULED).label("scheduled"),
        )
        .select_from(task_run_state)
        .where(task_run_state.c.id == bindparam("id", type_=task_run_state.c.id.type))
    )
    async with engine.connect() as conn:
        assert await statement.rows(conn, {"id": uuid.uuid4()}) == []
        (row,) = await DriverStatement(
            select(literal(7, Integer).label("seven"), literal(StateType.RUNNING).label("t"))
        ).rows(conn, {})
    assert row == {"seven": 7, "t": "RUNNING"}


async def test_an_in_list_is_sent_value_by_value_beside_the_callers_parameters(
    engine: AsyncEngine,
) -> None:
    """`column.in_(values)` expands as SQLAlchemy expands it at execution."""
    chosen = [StateType.RUNNING, StateType.CANCELLING]
    types = select(
        func.unnest(literal([t.value for t in StateType], ARRAY(Text))).label("t")
    ).subquery()
    statement = DriverStatement(
        select(types.c.t)
        .where(types.c.t.in_([t.value for t in chosen]))
        .order_by(types.c.t)
        .limit(bindparam("limit", type_=Integer))
    )
    async with engine.connect() as conn:
        assert [row["t"] for row in await statement.rows(conn, {"limit": 5})] == sorted(
            t.value for t in chosen
        )
        assert await statement.rows(conn, {"limit": 1}) == [{"t": min(t.value for t in chosen)}]


async def test_arrays_of_every_kind_arrive_whole_empty_ones_included(engine: AsyncEngine) -> None:
    """Arrays go in Postgres's binary format; the statement's cast names their type even when
    they are empty or hold NULLs."""
    ids = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
    times = bindparam("times", type_=ARRAY(DateTime(timezone=True)))
    numbers = bindparam("numbers", type_=ARRAY(Integer))
    statement = DriverStatement(
        select(
            ids.label("ids"),
            times.label("times"),
            func.cardinality(numbers).label("count"),
            func.array_length(literal(["a", "b"], ARRAY(Text)), 1).label("built_in"),
        )
    )
    run_ids = [uuid.uuid4(), None, uuid.uuid4()]
    moments = [datetime(2026, 12, 1, 22, 30, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    async with engine.connect() as conn:
        (full,) = await statement.rows(
            conn, {"ids": run_ids, "times": moments, "numbers": [1, 70_000, -3]}
        )
        (empty,) = await statement.rows(conn, {"ids": [], "times": [], "numbers": []})
    assert full == {"ids": run_ids, "times": moments, "count": 3, "built_in": 2}
    assert empty == {"ids": [], "times": [], "count": 0, "built_in": 2}


class _Typed(NamedTuple):
    seven: int
    type: StateType | None


async def test_records_are_made_from_values_in_column_order_with_enums_as_enums(
    engine: AsyncEngine,
) -> None:
    statement = DriverStatement(
        select(
            literal(7, Integer).label("seven"),
            bindparam("type", type_=task_run_state.c.type.type).label("type"),
        )
    )
    async with engine.connect() as conn:
        (typed,) = await statement.records(conn, {"type": StateType.PAUSED}, _Typed._make)
        (untyped,) = await statement.records(conn, {"type": None}, _Typed._make)
    assert typed == _Typed(7, StateType.PAUSED)
    assert typed.type is StateType.PAUSED
    assert untyped == _Typed(7, None)


async def test_a_json_none_is_stored_as_json_null_as_sqlalchemy_stores_it(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        (row,) = await _STATE_TYPE_AND_JSON.rows(
            conn, {"type": StateType.PENDING, "details": {}, "data": None}
        )
    assert row["data_is_sql_null"] is False


async def test_a_statement_runs_inside_the_callers_transaction(engine: AsyncEngine) -> None:
    name = f"rolled-back-{uuid.uuid4().hex[:8]}"
    async with engine.connect() as conn:
        await _NEW_FLOW.execute(conn, {"id": uuid.uuid4(), "name": name})
        assert len(await _FLOW_NAMED.rows(conn, {"name": name})) == 1
        await conn.rollback()
        assert await _FLOW_NAMED.rows(conn, {"name": name}) == []


async def test_a_statements_work_is_kept_by_the_connections_commit(engine: AsyncEngine) -> None:
    name = f"committed-{uuid.uuid4().hex[:8]}"
    async with engine.connect() as conn:
        await _NEW_FLOW.execute(conn, {"id": uuid.uuid4(), "name": name})
        await conn.commit()
    async with engine.connect() as conn:
        assert len(await _FLOW_NAMED.rows(conn, {"name": name})) == 1


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(engine: AsyncEngine) -> None:
    name = f"twice-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await _NEW_FLOW.execute(conn, {"id": uuid.uuid4(), "name": name})
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await _NEW_FLOW.execute(conn, {"id": uuid.uuid4(), "name": name})
    async with engine.connect() as conn:
        assert len(await _FLOW_NAMED.rows(conn, {"name": name})) == 1


async def test_a_lost_connection_is_invalidated_and_answered_unavailable(
    engine: AsyncEngine,
) -> None:
    """The backend dies under a statement: the caller gets the error the API answers
    UNAVAILABLE (a status clients retry), and the next call gets a working connection."""
    async with engine.connect() as victim:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await victim.commit()
        async with engine.connect() as killer:
            await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await killer.commit()
        with pytest.raises(DBAPIError) as raised:
            await _FLOW_NAMED.rows(victim, {"name": "anything"})
    assert raised.value.connection_invalidated
    assert status_for(raised.value).code.name == "UNAVAILABLE"
    async with engine.connect() as conn:
        assert await _FLOW_NAMED.rows(conn, {"name": f"none-{uuid.uuid4().hex}"}) == []
