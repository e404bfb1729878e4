"""Task-run use cases: create, read, query, rename, delete, and the state history."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    TaskRunServiceError,
)
from taskrun_server.domain.filters import TaskRunQuery, TaskRunSort
from taskrun_server.domain.history import HistoryInterval
from taskrun_server.domain.names import generate_name
from taskrun_server.domain.states import State, StateCreate, StateType
from taskrun_server.domain.task_runs import StoredTaskRun, TaskRun, TaskRunCreate
from taskrun_server.orchestration.bookkeeping import new_run_id
from taskrun_server.orchestration.decision import Facts, Proposal
from taskrun_server.orchestration.policies import decide
from taskrun_server.repository import concurrency_limits as limits_repo
from taskrun_server.repository import flow_runs as flow_runs_repo
from taskrun_server.repository import history as history_repo
from taskrun_server.repository import states as states_repo
from taskrun_server.repository import task_runs as runs_repo
from taskrun_server.service.clock import utcnow
from taskrun_server.service.coalescing import Coalescer, CoalescingSettings
from taskrun_server.service.database_errors import translate_integrity_error


@dataclass(slots=True, frozen=True)
class Page:
    """One page of a paginated read."""

    results: list[StoredTaskRun]
    count: int
    limit: int
    pages: int
    page: int


class TaskRunService:
    """The task-run use cases, over one engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        coalescing: CoalescingSettings | None = None,
        *,
        read_engine: AsyncEngine | None = None,
    ) -> None:
        """`read_engine`: where list and aggregate reads go (a hot standby, say); the primary
        when not given. Single-run reads stay on the primary: a client reading back what it
        just wrote must find it."""
        self._engine = engine
        self._autocommit = autocommit_view(engine)
        self._reads = autocommit_view(read_engine or engine)
        self._read_engine = read_engine or engine
        coalescing = coalescing or CoalescingSettings()
        self._coalescer: Coalescer[TaskRunCreate, tuple[StoredTaskRun, bool]] = Coalescer(
            self._create_together,
            max_batch=coalescing.max_batch,
            max_in_flight=coalescing.max_in_flight,
        )

    async def create(self, request: TaskRunCreate) -> tuple[StoredTaskRun, bool]:
        """Create a run, or return the one that has its key; the flag says which. Concurrent
        calls share a transaction, each answered (or refused) on its own."""
        return await self._coalescer.submit(request)

    async def _create_alone(self, request: TaskRunCreate) -> tuple[StoredTaskRun, bool]:
        """One statement in autocommit mode: a lone create costs one round trip."""
        run, first_state = _first_state(request, utcnow())
        async with self._autocommit.connect() as conn:
            try:
                created = await runs_repo.insert_task_run(conn, run, first_state)
            except IntegrityError as error:
                raise _create_error(error, request) from None
            if created:
                return run.stored(), True
            existing = await runs_repo.read_task_run_by_key(
                conn, run.flow_run_id, run.task_key, run.dynamic_key
            )
        if existing is None:  # deleted between our conflict and our read: rare, and retryable
            raise FailedPrecondition("the task run with this key was deleted concurrently; retry")
        return existing.stored(), False

    async def _create_together(
        self, requests: Sequence[TaskRunCreate]
    ) -> list[tuple[StoredTaskRun, bool] | Exception]:
        """Coalesced creates: one transaction, each answered as `create` answers it alone. A
        run naming a missing flow run is refused on its own; any other integrity error fails
        the batch, and the coalescer then tries each create alone for its own answer."""
        if len(requests) == 1:
            try:
                return [await self._create_alone(requests[0])]
            except TaskRunServiceError as error:
                return [error]
        now = utcnow()
        async with self._engine.begin() as conn:
            wanted = {r.flow_run_id for r in requests if r.flow_run_id is not None}
            missing = await flow_runs_repo.missing_flow_runs(conn, wanted)
            new = [_first_state(r, now) for r in requests if r.flow_run_id not in missing]
            made = iter(await _insert_or_find(conn, new))
        return [
            _create_error_for_missing_flow_run(r) if r.flow_run_id in missing else next(made)
            for r in requests
        ]

    async def create_many(
        self, requests: Sequence[TaskRunCreate]
    ) -> list[tuple[StoredTaskRun, bool]]:
        """Create many runs in one transaction, all or nothing; each answer as `create` gives
        it. An error names the item at fault as `requests[i]`."""
        now = utcnow()
        new = [_first_state(request, now) for request in requests]
        async with self._engine.begin() as conn:
            wanted = {r.flow_run_id for r in requests if r.flow_run_id is not None}
            missing = await flow_runs_repo.missing_flow_runs(conn, wanted)
            if missing:
                index = next(i for i, r in enumerate(requests) if r.flow_run_id in missing)
                raise NotFound(
                    f"flow run {requests[index].flow_run_id} does not exist",
                    f"requests[{index}].flow_run_id",
                )
            try:
                return await _insert_or_find(conn, new)
            except IntegrityError as error:
                raise _batch_create_error(error, requests) from None

    async def read(self, task_run_id: uuid.UUID) -> TaskRun:
        async with self._autocommit.connect() as conn:
            run = await runs_repo.read_task_run(conn, task_run_id)
        if run is None:
            raise _run_not_found(task_run_id)
        return run

    async def read_among(self, task_run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredTaskRun]:
        """These runs as stored, by id (missing ones absent)."""
        async with self._autocommit.connect() as conn:
            return await runs_repo.read_task_runs_among(conn, task_run_ids)

    async def read_many(
        self, query: TaskRunQuery, *, sort: TaskRunSort, limit: int, offset: int, bulky: bool
    ) -> list[StoredTaskRun]:
        """Matching runs; without `bulky`, their parameters and state data left out."""
        async with self._reads.connect() as conn:
            return await runs_repo.read_task_runs(
                conn, query, sort=sort, limit=limit, offset=offset, bulky=bulky
            )

    async def paginate(
        self, query: TaskRunQuery, *, sort: TaskRunSort, limit: int, page: int, bulky: bool
    ) -> Page:
        """One page and the total, read from one snapshot so that they agree."""
        async with self._read_engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                count = await runs_repo.count_task_runs(conn, query)
                results = await runs_repo.read_task_runs(
                    conn, query, sort=sort, limit=limit, offset=(page - 1) * limit, bulky=bulky
                )
        pages = math.ceil(count / limit) if limit else 0
        return Page(results=results, count=count, limit=limit, pages=pages, page=page)

    async def count(self, query: TaskRunQuery) -> int:
        async with self._reads.connect() as conn:
            return await runs_repo.count_task_runs(conn, query)

    async def count_by_state(self, query: TaskRunQuery) -> dict[StateType, int]:
        async with self._reads.connect() as conn:
            return await runs_repo.count_task_runs_by_state(conn, query)

    async def history(
        self, query: TaskRunQuery, *, start: datetime, end: datetime, interval: timedelta
    ) -> list[HistoryInterval]:
        async with self._reads.connect() as conn:
            return await history_repo.task_run_history(
                conn, query, start=start, end=end, interval=interval, now=utcnow()
            )

    async def rename(self, task_run_id: uuid.UUID, name: str | None) -> TaskRun:
        """Apply an update; with nothing to change it only checks that the run exists."""
        async with self._engine.begin() as conn:
            if name is not None:
                found = await runs_repo.update_task_run_name(conn, task_run_id, name, utcnow())
                if not found:
                    raise _run_not_found(task_run_id)
            run = await runs_repo.read_task_run(conn, task_run_id)
        if run is None:
            raise _run_not_found(task_run_id)
        return run

    async def delete(self, task_run_id: uuid.UUID) -> None:
        """Delete a run with its states and logs, and free any concurrency slot it holds."""
        async with self._engine.begin() as conn:
            if not await runs_repo.delete_task_run(conn, task_run_id):
                raise _run_not_found(task_run_id)
            await limits_repo.release_slots(conn, task_run_id, utcnow())

    async def read_state(self, state_id: uuid.UUID) -> State:
        async with self._autocommit.connect() as conn:
            state = await states_repo.read_state(conn, state_id)
        if state is None:
            raise NotFound(f"task run state {state_id} does not exist", "state_id")
        return state

    async def read_states(
        self, task_run_id: uuid.UUID, *, offset: int = 0, limit: int | None = None
    ) -> list[State]:
        """A run's history; NOT_FOUND for an unknown run rather than an empty list."""
        async with self._autocommit.connect() as conn:
            if not await runs_repo.task_run_exists(conn, task_run_id):
                raise _run_not_found(task_run_id)
            return await states_repo.read_states(conn, task_run_id, offset=offset, limit=limit)

    async def delete_state(self, state_id: uuid.UUID) -> None:
        """Delete a past state. The current one is refused: the run would point at nothing."""
        async with self._engine.begin() as conn:
            owner = await states_repo.lock_state_owner(conn, state_id)
            if owner is None:
                raise NotFound(f"task run state {state_id} does not exist", "state_id")
            if owner.is_current:
                raise FailedPrecondition(
                    f"state {state_id} is the current state of task run {owner.task_run_id}; "
                    "set a new state first or delete the task run",
                    "state_id",
                )
            await states_repo.delete_state(conn, state_id)


def _new_task_run(request: TaskRunCreate, now: datetime) -> TaskRun:
    return TaskRun(
        id=new_run_id(request.id),
        created=now,
        updated=now,
        name=request.name or generate_name(),
        flow_run_id=request.flow_run_id,
        task_key=request.task_key,
        dynamic_key=request.dynamic_key,
        cache_key=request.cache_key,
        cache_expiration=request.cache_expiration,
        task_version=request.task_version,
        empirical_policy=request.empirical_policy.normalized(),
        tags=request.tags,
        labels=request.labels,
        task_inputs=request.task_inputs,
        parameters=request.parameters,
    )


def _first_state(request: TaskRunCreate, now: datetime) -> tuple[TaskRun, State]:
    """A new run and its first state: through the same `decide` as SetTaskRunState, with the
    minimal policy (no rules, as in the reference), so the bookkeeping fills the run's fields."""
    decision = decide(
        Proposal(
            run=_new_task_run(request, now),
            proposed=request.state or StateCreate(type=StateType.PENDING),
            now=now,
            first=True,
        ),
        Facts(),
    )
    assert decision.state is not None  # the minimal policy stores every first state
    return decision.run, decision.state


async def _insert_or_find(
    conn: AsyncConnection, new: Sequence[tuple[TaskRun, State]]
) -> list[tuple[StoredTaskRun, bool]]:
    """Insert new runs with their first states; a run whose key is taken (in the database, or
    earlier in `new`) is answered with the run holding it, not created. Each run is turned into
    its stored form once: for the insert, and for the answer."""
    stored = [(run.stored(), state) for run, state in new]
    inserted = await runs_repo.insert_task_runs(conn, stored)
    keys = [_key(run) for run, _ in new if run.id not in inserted]
    existing = await runs_repo.read_task_runs_by_keys(conn, keys)
    return [
        (row, True) if row.id in inserted else (existing[_key(run)].stored(), False)
        for (run, _), (row, _) in zip(new, stored, strict=True)
    ]


def _create_error_for_missing_flow_run(request: TaskRunCreate) -> NotFound:
    return NotFound(f"flow run {request.flow_run_id} does not exist", "flow_run_id")


def _key(run: TaskRun) -> tuple[uuid.UUID | None, str, str]:
    return run.flow_run_id, run.task_key, run.dynamic_key


def _batch_create_error(error: IntegrityError, requests: Sequence[TaskRunCreate]) -> Exception:
    """A client-chosen id taken by a run with another key, or a flow run deleted meanwhile."""
    known = {
        "task_run_flow_run_id_fkey": NotFound(
            "a flow run named in the batch was deleted meanwhile; retry", "requests"
        ),
        "task_run_pkey": AlreadyExists(
            "a client-chosen id in the batch is taken by a run with another key",
            "requests",
        ),
    }
    return translate_integrity_error(error, known) or error


def _create_error(error: IntegrityError, request: TaskRunCreate) -> Exception:
    known = {
        "task_run_flow_run_id_fkey": NotFound(
            f"flow run {request.flow_run_id} does not exist", "flow_run_id"
        ),
        "task_run_pkey": AlreadyExists(
            f"a task run with id {request.id} exists with another key", "id"
        ),
    }
    return translate_integrity_error(error, known) or error


def _run_not_found(task_run_id: uuid.UUID) -> NotFound:
    return NotFound(f"task run {task_run_id} does not exist", "task_run_id")
