"""SetTaskRunState: propose a state, run the rules, store what they decided, in one transaction.

The run's row is locked first (SELECT ... FOR UPDATE), so concurrent proposals for one run are
applied one after another: the history is a clean sequence and counters are exact. "Now" is
read after the lock is granted, and never earlier than the current state's timestamp, so state
timestamps never go backwards even across replicas whose clocks differ slightly.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskrun_server.domain.errors import NotFound
from taskrun_server.domain.states import State, StateCreate, StateType
from taskrun_server.domain.task_runs import TaskRun
from taskrun_server.orchestration.bookkeeping import apply_accepted_state, materialize_state
from taskrun_server.orchestration.context import (
    FlowRunFacts,
    OrchestrationSettings,
    SetStateStatus,
    TransitionContext,
)
from taskrun_server.orchestration.rules import CORE_TASK_POLICY, orchestrate
from taskrun_server.repository import concurrency_limits as limits_repo
from taskrun_server.repository import flow_runs as flow_runs_repo
from taskrun_server.repository import state_cache as cache_repo
from taskrun_server.repository import task_runs as runs_repo
from taskrun_server.service.clock import utcnow


@dataclass(slots=True, frozen=True)
class Transition:
    """The answer to a proposal: what was decided, the state to adopt, and the run after."""

    status: SetStateStatus
    state: State | None
    reason: str | None
    delay: timedelta | None
    run: TaskRun


class OrchestrationService:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: OrchestrationSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings or OrchestrationSettings()
        self._rng = rng or random.Random()

    async def set_state(
        self, task_run_id: uuid.UUID, proposed: StateCreate, *, force: bool
    ) -> Transition:
        async with self._engine.begin() as conn:
            run = await runs_repo.lock_task_run(conn, task_run_id)
            if run is None:
                raise NotFound(f"task run {task_run_id} does not exist", "task_run_id")
            now = _monotonic_now(run.state)
            ctx = TransitionContext(
                run=run,
                initial=run.state,
                proposed=dataclasses.replace(proposed),
                now=now,
                settings=self._settings,
                rng=self._rng,
            )
            if not force:
                await _load_facts(conn, ctx)
                orchestrate(ctx, CORE_TASK_POLICY)
            stored = await _store_outcome(conn, ctx)
        return Transition(
            status=ctx.status,
            state=stored or ctx.initial,
            reason=ctx.reason,
            delay=ctx.delay,
            run=ctx.run,
        )


def _monotonic_now(current: State | None) -> datetime:
    now = utcnow()
    if current is not None and current.timestamp > now:
        return current.timestamp
    return now


async def _load_facts(conn: AsyncConnection, ctx: TransitionContext) -> None:
    """Read what the rules may need, and nothing more: most proposals need no extra query."""
    proposed = ctx.proposed
    if proposed is None or proposed.type is not StateType.RUNNING:
        return
    run = ctx.run
    if run.flow_run_id is not None:
        flow_run = await flow_runs_repo.read_flow_run(conn, run.flow_run_id)
        if flow_run is not None:
            ctx.flow_run = FlowRunFacts(
                state_type=flow_run.state_type, run_count=flow_run.run_count
            )
    details = proposed.state_details
    if details.cache_key and not details.refresh_cache:
        ctx.cached_state = await cache_repo.read_cached_state(conn, details.cache_key, ctx.now)
    if run.tags:
        ctx.limits = await limits_repo.lock_limits_for_tags(conn, run.tags)


async def _store_outcome(conn: AsyncConnection, ctx: TransitionContext) -> State | None:
    """Store the decided state, if any, with its bookkeeping and side effects."""
    if ctx.proposed is None:
        return None
    run, initial = ctx.run, ctx.initial
    state = materialize_state(ctx.proposed, run, ctx.now)
    apply_accepted_state(run, initial, state)
    await runs_repo.store_transition(conn, run, state)
    if state.type is StateType.RUNNING and ctx.slots_to_take:
        await limits_repo.take_slots(conn, ctx.slots_to_take, run.id, ctx.now)
    if (
        initial is not None
        and initial.type is StateType.RUNNING
        and state.type is not StateType.RUNNING
    ):
        await limits_repo.release_slots(conn, run.id, ctx.now)
    if ctx.insert_into_cache:
        await cache_repo.insert_cache_entry(conn, state, ctx.now)
    return state
