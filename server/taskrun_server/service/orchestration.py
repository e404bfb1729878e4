"""SetTaskRunState: propose a state, run the rules, store what they decided, in one transaction.

The run's row is locked first (SELECT ... FOR UPDATE), so concurrent proposals for one run are
applied one after another: the history is a clean sequence and counters are exact. "Now" is
read after the lock is granted, and never earlier than the current state's timestamp, so state
timestamps never go backwards even across replicas whose clocks differ slightly.

The reaper's transitions take the same path: a run whose execution lease lapsed or whose
attempt timed out is locked (skipping runs another replica or a client holds), re-checked, and
moved to the state `orchestration.leases.reap` decides.
"""

from __future__ import annotations

import dataclasses
import logging
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
from taskrun_server.orchestration.leases import LeaseSettings, fence, lease_after, reap
from taskrun_server.orchestration.rules import (
    Rule,
    orchestrate,
    policy_for,
    secure_concurrency_slots,
)
from taskrun_server.repository import concurrency_limits as limits_repo
from taskrun_server.repository import flow_runs as flow_runs_repo
from taskrun_server.repository import leases as leases_repo
from taskrun_server.repository import state_cache as cache_repo
from taskrun_server.repository import task_runs as runs_repo
from taskrun_server.service.clock import utcnow

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Transition:
    """The answer to a proposal: what was decided, the state to adopt, the run after, and the
    execution lease the caller holds from now on (None: none it may renew)."""

    status: SetStateStatus
    state: State | None
    reason: str | None
    delay: timedelta | None
    run: TaskRun
    lease_id: uuid.UUID | None = None


class OrchestrationService:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: OrchestrationSettings | None = None,
        rng: random.Random | None = None,
        leases: LeaseSettings | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings or OrchestrationSettings()
        self._rng = rng or random.Random()
        self._leases = leases or LeaseSettings()

    async def set_state(
        self,
        task_run_id: uuid.UUID,
        proposed: StateCreate,
        *,
        force: bool,
        lease_id: uuid.UUID | None = None,
    ) -> Transition:
        """Propose a state; `lease_id` is the caller's lease, checked first when given."""
        async with self._engine.begin() as conn:
            run = await runs_repo.lock_task_run(conn, task_run_id)
            if run is None:
                raise NotFound(f"task run {task_run_id} does not exist", "task_run_id")
            return await self._transition(
                conn, run, proposed, force=force, caller_lease=lease_id, now=_monotonic_now(run)
            )

    async def reap_lapsed(self, limit: int = 100) -> int:
        """Take back up to `limit` runs whose lease lapsed or whose attempt timed out, one short
        transaction each. Returns how many were moved. Safe to run in every replica at once:
        each run is locked with SKIP LOCKED and re-checked under the lock."""
        async with self._engine.connect() as conn:
            candidates = await leases_repo.lapsed(conn, limit)
            await conn.commit()
        moved = 0
        for task_run_id in candidates:
            try:
                moved += await self._reap_one(task_run_id)
            except Exception:  # one bad run must not stop the others; it is tried next tick
                logger.exception("reaper: could not take back task run %s", task_run_id)
        return moved

    async def _reap_one(self, task_run_id: uuid.UUID) -> int:
        async with self._engine.begin() as conn:
            run = await runs_repo.lock_task_run(conn, task_run_id, skip_locked=True)
            if run is None:  # busy elsewhere (a proposal, a heartbeat, another reaper) or gone
                return 0
            now = await leases_repo.database_now(conn)
            reaping = reap(run, now, self._leases, self._rng)
            if reaping is None:
                return 0
            before = run.state_type  # the transition updates `run` in place
            transition = await self._transition(
                conn,
                run,
                reaping.proposal,
                force=not reaping.orchestrated,
                caller_lease=None,
                now=_monotonic_now(run),
            )
        logger.info(
            "reaper: task run %s %s -> %s (%s)",
            task_run_id,
            before,
            transition.run.state_type,
            reaping.proposal.message,
        )
        return 1

    async def _transition(
        self,
        conn: AsyncConnection,
        run: TaskRun,
        proposed: StateCreate,
        *,
        force: bool,
        caller_lease: uuid.UUID | None,
        now: datetime,
    ) -> Transition:
        """Fence, decide and store one proposal for a run locked by the caller."""
        refusal = fence(run, caller_lease, proposed)
        if refusal is not None:
            return Transition(SetStateStatus.ABORT, run.state, refusal, None, run)
        before = dataclasses.replace(run)  # what the answer carries if nothing is stored
        ctx = TransitionContext(
            run=run,
            initial=run.state,
            proposed=dataclasses.replace(proposed),
            now=now,
            settings=self._settings,
            rng=self._rng,
        )
        policy = policy_for(proposed, force)
        if policy:
            await _load_facts(conn, ctx, policy)
            orchestrate(ctx, policy)
        stored, held = await _store_outcome(conn, ctx, caller_lease, self._leases)
        if stored is None:
            # A rule may have changed the working copy (a reset run count) before a later one
            # answered WAIT, ABORT or REJECT: nothing was stored, so the run is as it was.
            ctx.run = before
        if stored is None and run.lease is not None and run.lease.id == caller_lease:
            held = caller_lease  # nothing stored: the caller keeps what it had
        return Transition(
            status=ctx.status,
            state=stored or ctx.initial,
            reason=ctx.reason,
            delay=ctx.delay,
            run=ctx.run,
            lease_id=held,
        )


def _monotonic_now(run: TaskRun) -> datetime:
    now = utcnow()
    current = run.state
    if current is not None and current.timestamp > now:
        return current.timestamp
    return now


async def _load_facts(
    conn: AsyncConnection, ctx: TransitionContext, policy: tuple[Rule, ...]
) -> None:
    """Read what the policy's rules may need, and nothing more: most proposals need no extra
    query. Only RUNNING proposals consult the flow run, the cache or the limits."""
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
    if run.tags and secure_concurrency_slots in policy:
        ctx.limits = await limits_repo.lock_limits_for_tags(conn, run.tags)


async def _store_outcome(
    conn: AsyncConnection,
    ctx: TransitionContext,
    caller_lease: uuid.UUID | None,
    lease_settings: LeaseSettings,
) -> tuple[State | None, uuid.UUID | None]:
    """Store the decided state, if any, with its bookkeeping and side effects. Returns it and
    the lease the caller holds afterwards."""
    if ctx.proposed is None:
        return None, None
    run, initial = ctx.run, ctx.initial
    state = materialize_state(ctx.proposed, run, ctx.now)
    terms = lease_after(run, state, caller_lease=caller_lease, now=ctx.now, settings=lease_settings)
    run.lease, run.execution_deadline = terms.lease, terms.execution_deadline
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
    return state, terms.caller_lease
