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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.errors import NotFound
from taskrun_server.domain.states import StateCreate, StateType
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
from taskrun_server.service.coalescing import Coalescer, CoalescingSettings

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class StateProposal:
    """One SetTaskRunState call: the run, the state proposed, `force`, and the caller's lease
    (checked first when given)."""

    task_run_id: uuid.UUID
    proposed: StateCreate
    force: bool = False
    lease_id: uuid.UUID | None = None


ProposalResult = Decision | NotFound


class OrchestrationService:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: OrchestrationSettings | None = None,
        rng: random.Random | None = None,
        leases: LeaseSettings | None = None,
        coalescing: CoalescingSettings | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings or OrchestrationSettings()
        self._rng = rng or random.Random()
        self._leases = leases or LeaseSettings()
        coalescing = coalescing or CoalescingSettings()
        self._coalescer: Coalescer[StateProposal, Decision] = Coalescer(
            self._set_states_together,
            max_batch=coalescing.max_batch,
            max_in_flight=coalescing.max_in_flight,
        )

    async def set_state(self, proposal: StateProposal) -> Decision:
        """Propose a state; the proposal's lease, when given, is checked first.

        Concurrent calls share a transaction, each orchestrated on its own. That transaction
        skips runs another one holds rather than wait (one busy run must not hold up the
        others); such a proposal, or one for a run that does not exist, is then made alone.
        """
        try:
            return await self._coalescer.submit(proposal)
        except _RunNotLocked:
            async with self._engine.begin() as conn:
                (result,) = await self._orchestrate(conn, [proposal], skip_locked=False)
            return _raise_if_missing(result, proposal)

    async def set_states(self, proposals: Sequence[StateProposal]) -> list[ProposalResult]:
        """Orchestrate many proposals in one transaction, in order, each on its own: a decision
        per proposal, or NotFound for a run that does not exist. Proposals for one run see
        the outcome of the earlier ones."""
        async with self._engine.begin() as conn:
            results = await self._orchestrate(conn, proposals, skip_locked=False)
        return [
            _found(result, proposal) for result, proposal in zip(results, proposals, strict=True)
        ]

    async def _set_states_together(
        self, proposals: Sequence[StateProposal]
    ) -> list[Decision | Exception]:
        """A coalesced batch of single calls, skipping runs it cannot lock at once."""
        async with self._engine.begin() as conn:
            results = await self._orchestrate(conn, proposals, skip_locked=True)
        return [_RunNotLocked() if result is None else result for result in results]

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
            locked = await runs_repo.lock_task_runs(conn, [task_run_id], skip_locked=True)
            run = locked.get(task_run_id)
            if run is None:  # busy elsewhere (a proposal, a heartbeat, another reaper) or gone
                return 0
            now = await leases_repo.database_now(conn)
            reaping = reap(run, now, self._leases, self._rng)
            if reaping is None:
                return 0
            before = run.state_type
            proposal = StateProposal(task_run_id, reaping.proposal, force=not reaping.orchestrated)
            (decision,) = await _Batch(self, conn, locked).orchestrate([proposal])
        assert decision is not None
        logger.info(
            "reaper: task run %s %s -> %s (%s)",
            task_run_id,
            before,
            decision.run.state_type,
            reaping.proposal.message,
        )
        return 1

    async def _orchestrate(
        self, conn: AsyncConnection, proposals: Sequence[StateProposal], *, skip_locked: bool
    ) -> list[Decision | None]:
        """Lock the runs, then decide and persist each proposal in order. None: the run was
        not locked (it does not exist, or another transaction holds it and `skip_locked`)."""
        runs = await runs_repo.lock_task_runs(
            conn, [p.task_run_id for p in proposals], skip_locked=skip_locked
        )
        return await _Batch(self, conn, runs).orchestrate(proposals)

    def _decide(self, proposal: Proposal, facts: Facts) -> Decision:
        return decide(proposal, facts, settings=self._settings, leases=self._leases, rng=self._rng)


class _RunNotLocked(Exception):
    """A coalesced proposal's run was not locked: another transaction holds it, or it does not
    exist. The proposal is made again alone, waiting for the lock."""


def _raise_if_missing(result: Decision | None, proposal: StateProposal) -> Decision:
    found = _found(result, proposal)
    if isinstance(found, NotFound):
        raise found
    return found


def _found(result: Decision | None, proposal: StateProposal) -> ProposalResult:
    if result is None:
        return NotFound(f"task run {proposal.task_run_id} does not exist", "task_run_id")
    return result


class _Batch:
    """Proposals for runs locked by one transaction: each decided in order against the runs,
    tag limits and cache as the earlier ones left them, and written in as few statements as
    that allows. Writes are held back and flushed together, unless a later proposal must read
    them first (a second proposal for the same run, or a cache lookup after a cache insert)."""

    def __init__(
        self, service: OrchestrationService, conn: AsyncConnection, runs: dict[uuid.UUID, TaskRun]
    ) -> None:
        self._service = service
        self._conn = conn
        self._runs = runs
        self._limits: dict[str, ConcurrencyLimit] = {}
        self._flow_runs: dict[uuid.UUID, FlowRunFacts | None] = {}
        self._pending: list[Decision] = []

    async def orchestrate(self, proposals: Sequence[StateProposal]) -> list[Decision | None]:
        await self._lock_limits(proposals)
        await self._read_flow_runs(proposals)
        results: list[Decision | None] = []
        for item in proposals:
            run = self._runs.get(item.task_run_id)
            if run is None:
                results.append(None)
                continue
            if any(d.run.id == run.id for d in self._pending):
                await self._flush()
            proposal = Proposal(
                run=run,
                proposed=item.proposed,
                now=_monotonic_now(run),
                force=item.force,
                caller_lease=item.lease_id,
            )
            decision = self._service._decide(proposal, await self._facts(proposal))
            self._remember(decision)
            results.append(decision)
        await self._flush()
        return results

    async def _lock_limits(self, proposals: Sequence[StateProposal]) -> None:
        """The limits on the tags of every run proposed RUNNING, locked at once in tag order
        (never one proposal at a time: two batches could then lock them in opposite orders).

        When some run enters RUNNING, the limits of the runs now RUNNING (leaving it frees their
        slots) are locked with them: freeing slots later in the batch would otherwise lock
        further limits after these, out of tag order. A batch that only frees slots needs no
        lock here: the release locks its limits in tag order by itself."""
        entering = [
            run
            for p in proposals
            if p.proposed.type is StateType.RUNNING
            and (run := self._runs.get(p.task_run_id)) is not None
        ]
        if not any(run.tags for run in entering):
            return
        running = [run for run in self._runs.values() if run.state_type is StateType.RUNNING]
        tags = {tag for run in (*entering, *running) for tag in run.tags}
        self._limits = await limits_repo.lock_limits_for_tags(self._conn, sorted(tags))

    async def _read_flow_runs(self, proposals: Sequence[StateProposal]) -> None:
        wanted = {
            run.flow_run_id
            for p in proposals
            if (run := self._runs.get(p.task_run_id)) is not None and run.flow_run_id is not None
        }
        if wanted:
            found = await flow_runs_repo.read_flow_runs(self._conn, wanted)
            self._flow_runs = {
                flow_run_id: (
                    FlowRunFacts(state_type=f.state_type, run_count=f.run_count)
                    if (f := found.get(flow_run_id)) is not None
                    else None
                )
                for flow_run_id in wanted
            }

    async def _facts(self, proposal: Proposal) -> Facts:
        """What the proposal's rules declare they need, from what the batch holds; a cache
        lookup is the one fact read per proposal."""
        needed = facts_needed(proposal)
        run, details = proposal.run, proposal.proposed.state_details
        flow_run = None
        if Fact.FLOW_RUN in needed and run.flow_run_id is not None:
            flow_run = self._flow_runs.get(run.flow_run_id)
        cached = None
        if Fact.CACHED_STATE in needed and details.cache_key:
            if any(d.effects.insert_into_cache for d in self._pending):
                await self._flush()
            cached = await cache_repo.read_cached_state(self._conn, details.cache_key, proposal.now)
        limits = self._limits if Fact.TAG_LIMITS in needed else {}
        return Facts(flow_run=flow_run, cached_state=cached, limits=limits)

    def _remember(self, decision: Decision) -> None:
        """Hold the decision's writes back, and apply them to what later proposals read."""
        if decision.state is None:
            return
        run = decision.run
        self._runs[run.id] = run
        self._pending.append(decision)
        if decision.effects.release_slots:
            for tag, limit in self._limits.items():
                if run.id in limit.active_slots:
                    slots = [s for s in limit.active_slots if s != run.id]
                    self._limits[tag] = dataclasses.replace(limit, active_slots=slots)
        for tag in decision.effects.take_slots:
            limit = self._limits[tag]
            if run.id not in limit.active_slots:
                slots = [*limit.active_slots, run.id]
                self._limits[tag] = dataclasses.replace(limit, active_slots=slots)

    async def _flush(self) -> None:
        """Store the held-back states, then their effects: slots freed, slots taken, cache
        entries (which name the stored states)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        conn = self._conn
        await runs_repo.store_transitions(conn, [(d.run, d.state) for d in pending if d.state])
        now = max(d.state.timestamp for d in pending if d.state)
        releasing = [d.run.id for d in pending if d.effects.release_slots and d.run.tags]
        if releasing:
            await limits_repo.release_slots_of_runs(conn, releasing, now)
        for d in pending:
            if d.effects.take_slots:
                await limits_repo.take_slots(conn, d.effects.take_slots, d.run.id, now)
            if d.effects.insert_into_cache and d.state is not None:
                await cache_repo.insert_cache_entry(conn, d.state, now)


def _monotonic_now(run: TaskRun) -> datetime:
    now = utcnow()
    current = run.state
    if current is not None and current.timestamp > now:
        return current.timestamp
    return now
