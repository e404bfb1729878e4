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

import logging
import random
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskrun_server.domain.errors import NotFound
from taskrun_server.domain.states import StateCreate
from taskrun_server.domain.task_runs import TaskRun
from taskrun_server.orchestration.decision import (
    Decision,
    Fact,
    Facts,
    FlowRunFacts,
    OrchestrationSettings,
    Proposal,
)
from taskrun_server.orchestration.leases import LeaseSettings, reap
from taskrun_server.orchestration.policies import decide, facts_needed
from taskrun_server.repository import concurrency_limits as limits_repo
from taskrun_server.repository import flow_runs as flow_runs_repo
from taskrun_server.repository import leases as leases_repo
from taskrun_server.repository import state_cache as cache_repo
from taskrun_server.repository import task_runs as runs_repo
from taskrun_server.service.clock import utcnow

logger = logging.getLogger(__name__)


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
    ) -> Decision:
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
            before = run.state_type
            decision = await self._transition(
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
            decision.run.state_type,
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
    ) -> Decision:
        """Load the facts, decide and persist one proposal for a run locked by the caller."""
        proposal = Proposal(
            run=run, proposed=proposed, now=now, force=force, caller_lease=caller_lease
        )
        facts = await _load_facts(conn, proposal)
        decision = decide(
            proposal, facts, settings=self._settings, leases=self._leases, rng=self._rng
        )
        await _persist(conn, decision, now)
        return decision


def _monotonic_now(run: TaskRun) -> datetime:
    now = utcnow()
    current = run.state
    if current is not None and current.timestamp > now:
        return current.timestamp
    return now


async def _load_facts(conn: AsyncConnection, proposal: Proposal) -> Facts:
    """Read what the proposal's rules declare they need, and nothing more: most proposals need
    no extra query."""
    needed = facts_needed(proposal)
    run, details = proposal.run, proposal.proposed.state_details
    flow_run = None
    if Fact.FLOW_RUN in needed and run.flow_run_id is not None:
        found = await flow_runs_repo.read_flow_run(conn, run.flow_run_id)
        if found is not None:
            flow_run = FlowRunFacts(state_type=found.state_type, run_count=found.run_count)
    cached = None
    if Fact.CACHED_STATE in needed and details.cache_key:
        cached = await cache_repo.read_cached_state(conn, details.cache_key, proposal.now)
    limits = {}
    if Fact.TAG_LIMITS in needed:
        limits = await limits_repo.lock_limits_for_tags(conn, run.tags)
    return Facts(flow_run=flow_run, cached_state=cached, limits=limits)


async def _persist(conn: AsyncConnection, decision: Decision, now: datetime) -> None:
    """Store the decided state, if any, with the effects the decision names."""
    state, run, effects = decision.state, decision.run, decision.effects
    if state is None:
        return
    await runs_repo.store_transition(conn, run, state)
    if effects.take_slots:
        await limits_repo.take_slots(conn, effects.take_slots, run.id, now)
    if effects.release_slots:
        await limits_repo.release_slots(conn, run.id, now)
    if effects.insert_into_cache:
        await cache_repo.insert_cache_entry(conn, state, now)
