"""Statements on the hottest paths, run on the connection's psycopg connection directly.

Why: SQLAlchemy's work around each execution (result metadata built from psycopg's description
of every column, row processors, parameter processors, the execution context) cost about 0.3 ms
for the statement that locks a run and returns its 40 columns: a sixth of a state change's CPU,
measured in process. The round trip itself costs about 0.15 ms.

What stays the same: the statement is written once with SQLAlchemy Core and compiled once with
the connection's dialect, so Postgres receives the text SQLAlchemy would send. It runs on the
same pooled connection, inside the caller's transaction (begun as SQLAlchemy would begin it, so
that its commit and rollback apply) or in autocommit mode. Values cross with psycopg's adapters,
which this engine's connections configure to encode and decode JSON with orjson; the
conversions SQLAlchemy's column types made are made here: JSON parameters are sent as jsonb
(None as JSON null, as SQLAlchemy's JSONB type sends it), and enums (state types) are sent by
value and read back as members. Arrays (of run ids, of bucket bounds) are sent in Postgres's
binary format: psycopg writes a list as text one element at a time, about 1 us a UUID and 3 us
a timestamp (measured), where the binary format costs 0.2 us either; the statement's own cast
(`::UUID[]`, which SQLAlchemy renders) still names the array's type, an empty one included.
Database errors surface as the SQLAlchemy exceptions the rest of the server maps to statuses,
and a connection lost mid-statement is invalidated, not pooled again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar

import psycopg
from psycopg.rows import RowFactory, dict_row, tuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import Enum as EnumType
from sqlalchemy import Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import ARRAY, JSON

Record = TypeVar("Record")


class DriverStatement:
    """A Core statement compiled on first use, then executed by psycopg alone.

    A statement with IN lists (`column.in_(values)`) is compiled with each list's values as
    parameters of their own, as SQLAlchemy expands them at execution."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._sql: str | None = None
        self._json_params: frozenset[str] = frozenset()
        self._built_in: dict[str, Any] = {}
        self._enums: tuple[tuple[int, str, type[Enum]], ...] = ()
        """The enum columns (state types): position, name and enum, for tuple and dict rows."""

    def _compile(self, conn: AsyncConnection) -> str:
        assert isinstance(self._statement, ClauseElement)
        compiled = self._statement.compile(dialect=conn.dialect)
        assert isinstance(compiled, SQLCompiler)
        binds = compiled.binds.values()
        named = compiled.bind_names  # a bind's name in the SQL text (anonymous ones numbered)
        self._json_params = frozenset(named[b] for b in binds if isinstance(b.type, JSON))
        # Values built into the statement (a literal, `column == StateType.SCHEDULED`) are
        # parameters too: SQLAlchemy sends them with every execution, and so must this.
        if any(b.expanding for b in binds):
            # Each list's values become parameters of their own, as SQLAlchemy expands them at
            # execution; the caller's parameters are left for each execution to give.
            required = {named[b]: None for b in binds if b.required}
            assert not any(b.expanding and b.required for b in binds), "lists are built in"
            expanded = compiled.construct_expanded_state(required)
            sql = expanded.statement
            self._built_in = {
                name: value for name, value in expanded.parameters.items() if name not in required
            }
        else:
            sql = str(compiled)
            self._built_in = {named[b]: b.effective_value for b in binds if not b.required}
        for name in {named[b] for b in binds if isinstance(b.type, ARRAY)}:
            sql = sql.replace(f"%({name})s", f"%({name})b")
        exported = getattr(self._statement, "exported_columns", ())
        self._enums = tuple(
            (i, c.name, c.type.enum_class)
            for i, c in enumerate(exported)
            if isinstance(c.type, EnumType) and c.type.enum_class is not None
        )
        self._sql = sql
        return sql

    def _parameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: Jsonb(value)
            if name in self._json_params
            else (value.value if isinstance(value, Enum) else value)
            for name, value in params.items()
        }

    async def rows(self, conn: AsyncConnection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, as a dict by column name; enum columns (state types) as their enum."""
        cursor = await self._execute(conn, params)
        rows = await cursor.fetchall()
        for _, column, enum_class in self._enums:
            for row in rows:
                value = row[column]
                if value is not None:
                    row[column] = enum_class(value)
        return rows

    async def records(
        self,
        conn: AsyncConnection,
        params: Mapping[str, Any],
        record: Callable[[Sequence[Any]], Record],
    ) -> list[Record]:
        """Every row, made by `record` from its values in column order (a NamedTuple's
        `_make`): no dict per row. Enum columns (state types) are given as their enum."""
        cursor = await self._execute(conn, params, tuple_row)
        rows = await cursor.fetchall()
        if not self._enums:
            return [record(row) for row in rows]
        records = []
        for row in rows:
            values = list(row)
            for position, _, enum_class in self._enums:
                value = values[position]
                if value is not None:
                    values[position] = enum_class(value)
            records.append(record(values))
        return records

    async def scalar(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any:
        """The first column of the one row the statement returns."""
        cursor = await self._execute(conn, params)
        row = await cursor.fetchone()
        assert row is not None, "the statement returned no row"
        return next(iter(row.values()))

    async def execute(self, conn: AsyncConnection, params: Mapping[str, Any]) -> None:
        """Run a statement that returns nothing to read."""
        await self._execute(conn, params)

    async def _execute(
        self,
        conn: AsyncConnection,
        params: Mapping[str, Any],
        row_factory: RowFactory[Any] = dict_row,
    ) -> psycopg.AsyncCursor[Any]:
        sql = self._sql or self._compile(conn)
        if not conn.in_transaction():
            # What SQLAlchemy's autobegin does on its first statement: without it, psycopg
            # would open a transaction that the connection's commit() and rollback() ignore.
            await conn.begin()
        driver = (await conn.get_raw_connection()).driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        cursor = driver.cursor(row_factory=row_factory)
        values = self._parameters({**self._built_in, **params} if self._built_in else params)
        try:
            await cursor.execute(sql, values)
        except psycopg.Error as error:
            raise await _as_sqlalchemy_error(conn, driver, sql, values, error) from error
        return cursor


async def _as_sqlalchemy_error(
    conn: AsyncConnection,
    driver: psycopg.AsyncConnection[Any],
    sql: str,
    values: dict[str, Any],
    error: psycopg.Error,
) -> DBAPIError:
    """The exception SQLAlchemy would have raised (IntegrityError, OperationalError, ...); a
    lost connection is invalidated first, so the pool opens a new one in its place."""
    lost = driver.closed or driver.broken  # what the psycopg dialect's is_disconnect checks
    if lost:
        await conn.invalidate(error)
    translated = DBAPIError.instance(
        sql,
        values,
        error,
        psycopg.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )
    assert isinstance(translated, DBAPIError)
    return translated
